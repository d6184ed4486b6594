"""``psqs sweep``: the Ps and Qs study (bit widths x methods x sparsity steps x seeds x label noise)
as content-addressed units of work on a Dask cluster, resumable from its directory alone.

A sweep directory (:mod:`.layout`)::

    sweep.json            the spec as validated, the plan (every unit, its inputs, its outputs)
    spec.yaml             the spec file as the user gave it
    artifacts/<kind>/<key>/   one stage artifact per unit output (manifest.json, sha256 of each file)
    state/<key>.running   a unit being run (host, pid, start); state/<key>.failed.json its error
    logs/<key>.log        what the unit logged
    search/               the Bayesian-optimization study (Optuna journal)
    report/               psqs report's output (table, figures, HTML)

A unit is one pruning chain (one model artifact per sparsity step), or one later stage of one
checkpoint (convert, rtl, build, bench), or one search trial. Its key hashes what determines its
output (its options, the data's sha256, its parent's key, the code of the stages it runs), so a
rerun skips what exists and a changed spec recomputes only what it changes.
"""
