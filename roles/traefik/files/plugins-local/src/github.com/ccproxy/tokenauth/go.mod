module github.com/ccproxy/tokenauth

go 1.19
