module gputemp/tests/go_reference

go 1.26
