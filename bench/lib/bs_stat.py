#!/usr/bin/python3
# copied from shared/peers/lib (this project's shared benchmark material)
"""usage: bs_stat.py PORT FIELD  -> prints the value of one beanstalkd `stats` field."""
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"stats\r\n")
buf = b""
for _ in range(1000):                       # bounded read loop
    chunk = s.recv(65536)
    if not chunk:
        break
    buf += chunk
    head, _, rest = buf.partition(b"\r\n")
    if head.startswith(b"OK ") and len(rest) >= int(head.split()[1]) + 2:
        break
for line in buf.decode().splitlines():
    if line.startswith(sys.argv[2] + ":"):
        print(line.split(":", 1)[1].strip())
        break
else:
    sys.exit("no field " + sys.argv[2])
