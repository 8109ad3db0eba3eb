#!/usr/bin/env python3
"""Starts a program the way systemd socket activation does: a listening unix
socket on fd 3, LISTEN_FDS=1 and LISTEN_PID set to the program's own pid
(exec keeps the pid). Stands in for systemd-socket-activate, which a machine
without systemd lacks.

usage: socket_activate.py SOCKET_PATH PROGRAM [ARG...]
"""
import os
import socket
import sys

path, argv = sys.argv[1], sys.argv[2:]
if os.path.exists(path):
    os.unlink(path)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
os.chmod(path, 0o666)
s.listen(128)
fd = s.fileno()
if fd != 3:
    os.dup2(fd, 3)
    os.close(fd)
os.set_inheritable(3, True)
env = dict(os.environ, LISTEN_FDS="1", LISTEN_PID=str(os.getpid()))
os.execve(argv[0], argv, env)
