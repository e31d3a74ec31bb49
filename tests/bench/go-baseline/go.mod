module naap/gobaseline

go 1.19
