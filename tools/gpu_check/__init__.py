"""`make gpu-check`: everything a CUDA GPU can show, planned to fit the time a GPU machine is lent.

| module | holds |
|---|---|
| `plan` | the steps of each tier (core, full) with their commands, time estimates and their basis |
| `preflight` | the machine's description (environment.json) and the toolchain checks (CUDA toolkit, C++ deps) |
| `state` | what a later call on the same machine reuses (per-step keys and markers, a mirror of the reports) |
| `run` | one call: steps within the budget, logs, reuse, failures reported and the next steps run |
| `summary` | summary.md / summary.json, rewritten after every step |

`python -m tools.gpu_check --help`; the README's "GPU check" section says what a lent machine runs and what comes
back.
"""
