"""MNIST readers (IDX, CSV), sources (embedded, path, Hadoop URI), DataLoader and samplers."""
