module frugal.invalid/deferbench

go 1.19
