"""Hardware capture: the golden-file layout (`golden`) and the GPU capture itself (`run`)."""
