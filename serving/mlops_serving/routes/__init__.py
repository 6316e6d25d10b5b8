"""HTTP routes, one module per protocol; they translate HTTP and call the data plane, nothing more."""
