"""psqs.common: what the build server and the board both read.

The artifact format, the I/O contract and its fixed-point rule, the codec, the overlay-package
reader, the stream probe's register map and the error base every psqs failure derives from. Both
sides import these from here so that writer and reader cannot drift apart. It is part of the
board install (with :mod:`psqs.host`), so it needs only the standard library and numpy, and it
imports no other psqs package.
"""
