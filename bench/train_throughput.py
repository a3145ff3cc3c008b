"""End-to-end training/inference throughput and latency; the same as ``minidin bench``.

    python bench/train_throughput.py [--batch-sizes 32,256,1024] [--threads 1,2] [--json PATH]
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from minidin.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
