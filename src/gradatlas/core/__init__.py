"""The torch-free core every wing may import: names, the results layout, files, provenance."""
