"""A fake police platform (GA/T 1400 视图库) for tests, the demo and the benchmark."""
