"""The Trio actor runtime and the pipe, dataset and system actors (the node issue builds it)."""
