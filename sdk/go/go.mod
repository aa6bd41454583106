module runnelsdk

go 1.24
