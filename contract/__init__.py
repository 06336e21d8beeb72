"""The contract every stage shares, importing only torch and the standard library.

| module | holds |
|---|---|
| `backends` | one description per artifact kind; every registry is derived from it |
| `profiles` | shape profiles (min/opt/max of batch, frames, height, width; tokens derived) |
| `manifest` | the JSON manifest beside every artifact, its integrity checks (sha256 of every file), `file_sha256` |
| `io` | input/output names, the manifest's axis symbols, the published patch size and timeline defaults |
| `dtypes` | precision names, dtype names, Triton data types |
| `positions` | the dense [t, h, w] grid of patch positions |
| `errors` | the one-line errors a user sees |

`runtime` needs this package and the library of the backend it runs, nothing from `export` or `models`.
"""
