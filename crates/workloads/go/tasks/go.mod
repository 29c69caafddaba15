module frugal.invalid/tasks

go 1.19
