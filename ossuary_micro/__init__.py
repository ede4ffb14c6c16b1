# ossuary_micro: the Ossuary secure channel (libossuary 0.5 wire protocol), sans-I/O.
