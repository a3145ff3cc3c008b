"""End-to-end training/inference throughput and latency, minidin next to PyTorch (``minidin bench``).

    python bench/train_throughput.py [--batch-sizes 32,256,1024] [--threads 1,2] [--json PATH]
                                     [--data-root DATA]

Runs ``minidin bench`` on lognormal histories (mean 9), then, when ``--data-root`` holds
``amazon-s3rec-5core/Beauty.txt`` (docs/data.md, "Getting the data"), once more on real Beauty histories
(prepared once into runs/bench/beauty). Extra options go to both runs; ``--json PATH``
writes PATH and PATH with ``-beauty`` before its extension.
"""
import os
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from minidin.cli import main  # noqa: E402


def _beauty(data_root):
    if data_root is None:
        return None
    src = os.path.join(data_root, "amazon-s3rec-5core")
    out = os.path.join(ROOT, "runs", "bench", "beauty")
    if not os.path.exists(os.path.join(src, "Beauty.txt")):
        return None
    if not os.path.exists(os.path.join(out, "meta.json")):
        from minidin.data.prepare import prepare_amazon
        prepare_amazon(out, sequences=os.path.join(src, "Beauty.txt"),
                       attributes=os.path.join(src, "Beauty_item2attributes.json"))
    return out


if __name__ == "__main__":
    args = sys.argv[1:]
    data_root = None
    if "--data-root" in args:
        i = args.index("--data-root")
        data_root = args[i + 1]
        del args[i:i + 2]
    rc = main(["bench", *args])
    beauty = _beauty(data_root)
    if rc == 0 and beauty is not None:
        extra = list(args)
        if "--json" in extra:
            j = extra.index("--json") + 1
            root, ext = os.path.splitext(extra[j])
            extra[j] = f"{root}-beauty{ext}"
        print("\nreal Amazon Beauty histories:")
        rc = main(["bench", "--data", beauty, *extra])
    elif beauty is None:
        print("\nno --data-root with amazon-s3rec-5core/Beauty.txt: skipped the real-history run")
    sys.exit(rc)
