module frugal.invalid/godefers

go 1.19
