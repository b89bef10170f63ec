"""CPU kernels numpy cannot express without big temporaries, written with numba.

Every numba function here is ``@njit(nogil=True, cache=True)``: it releases the GIL (so it runs
beside other engine work) and compiles on first use, never at import; compiled code is cached
on disk. GPU versions, where needed, sit next to the CPU ones and are chosen by the caller's xp.
"""
