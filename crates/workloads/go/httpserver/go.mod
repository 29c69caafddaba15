module frugal/httpserver

go 1.19
