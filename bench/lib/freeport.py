#!/usr/bin/python3
# copied from shared/peers/lib (this project's shared benchmark material)
"""Print a TCP port that is free on 127.0.0.1 right now."""
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
