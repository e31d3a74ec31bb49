module naap/gobaseline

go 1.22
