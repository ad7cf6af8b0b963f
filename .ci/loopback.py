"""Bring the loopback interface up, then run the command given: for use inside
`unshare -rn`, where the network namespace starts with every interface down and Jupyter
kernels (the notebook tests) still need 127.0.0.1."""

import fcntl
import os
import socket
import struct
import sys

SIOCSIFFLAGS = 0x8914
IFF_UP, IFF_LOOPBACK, IFF_RUNNING = 0x1, 0x8, 0x40

with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    flags = struct.pack("16sH22x", b"lo", IFF_UP | IFF_LOOPBACK | IFF_RUNNING)
    fcntl.ioctl(s, SIOCSIFFLAGS, flags)
os.execvp(sys.argv[1], sys.argv[1:])
