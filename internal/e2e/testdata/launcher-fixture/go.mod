module example.com/launcher-fixture

go 1.26.8

require golang.org/x/sync v0.23.0
