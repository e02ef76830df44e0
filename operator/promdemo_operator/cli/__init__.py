"""The command line: `promdemo` and its commands, `promdemo local`, the load
generator, doctor's cluster reader and the kubectl plugin. The outermost layer."""
