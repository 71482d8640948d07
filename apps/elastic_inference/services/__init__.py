"""One module per process and container; each wires core (and engine) pieces together."""
