# ossuary_io: drive an ossuary_micro Connection over a stream (socket, serial, UART).
