#!/usr/bin/env python3
"""What one durable write costs on this disk, single-threaded (the broker's per-batch floor).

Usage: python3 bench/broker/flush.py [DIR]   (DIR on the disk to measure; default: $TMPDIR)

- append + fdatasync: a size change, so a journal commit with a cache flush;
- pwrite into allocated zeros + fdatasync: no journal commit, still a cache flush;
- fdatasync with nothing dirty: on ext4 still a cache flush;
- pwrite + sync_file_range (write out and wait, no flush): what the broker's dedup record costs.
"""
import ctypes, os, shutil, sys, tempfile, time

libc = ctypes.CDLL(None, use_errno=True)
libc.sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]

def sync_file_range(fd, off, n, flags):
    if libc.sync_file_range(fd, off, n, flags) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))

d = tempfile.mkdtemp(dir=sys.argv[1] if len(sys.argv) > 1 else None)
N = 300

def t(label, f):
    t0 = time.perf_counter()
    for i in range(N):
        f(i)
    print(f"{label:<48} {(time.perf_counter() - t0) / N * 1e6:8.0f} us")

try:
    a = os.open(os.path.join(d, "a"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    t("append 201 B + fdatasync", lambda i: (os.write(a, b"x" * 200 + b"\n"), os.fdatasync(a)))
    b = os.open(os.path.join(d, "b"), os.O_RDWR | os.O_CREAT, 0o600)
    os.pwrite(b, b"\0" * (1 << 20), 0)
    os.fdatasync(b)
    t("pwrite 201 B into zeros + fdatasync", lambda i: (os.pwrite(b, b"y" * 200 + b"\n", i * 201), os.fdatasync(b)))
    t("fdatasync, nothing dirty", lambda i: os.fdatasync(b))
    flags = 1 | 2 | 4  # SYNC_FILE_RANGE_WAIT_BEFORE | WRITE | WAIT_AFTER
    t("pwrite 201 B into zeros + sync_file_range",
      lambda i: (os.pwrite(b, b"z" * 200 + b"\n", i * 201), sync_file_range(b, i * 201, 201, flags)))
finally:
    shutil.rmtree(d)
