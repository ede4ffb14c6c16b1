# host_tools: the host side (CPython): ossuary-cat, keygen, collector, deploy.
