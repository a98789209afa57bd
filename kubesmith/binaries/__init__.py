"""Real component binaries: recipes, a checksummed cache and the sources that fill it."""
