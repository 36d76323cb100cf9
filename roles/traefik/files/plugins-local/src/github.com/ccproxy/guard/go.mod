module github.com/ccproxy/guard

go 1.19
