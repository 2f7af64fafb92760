"""One module per claim (or per family of closely related claims), each exposing ``CLAIM``:
its title, statement, studies, parts, thresholds as named constants, its computation, and
its rule's text written from those same constants. ``claims.registry`` finds them."""
