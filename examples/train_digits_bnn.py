"""Train the example BNN (examples/digits_bnn.py) on scikit-learn's bundled
digits and write its state_dict to examples/digits_bnn.pt.

Deterministic (seeded, single process, fixed thread count) and well under a
minute on 2 cores. Binary layers are trained with the straight-through
estimator on latent float weights (Adam, cosine learning rate), with random
one-pixel shifts as augmentation. Run: python examples/train_digits_bnn.py
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from digits_bnn import WEIGHTS, DigitsBNN, load_split  # noqa: E402


def shift(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Each image moved by -1, 0 or +1 pixels in each direction (zero fill)."""
    padded = F.pad(x, (1, 1, 1, 1))
    dy, dx = torch.randint(0, 3, (2, x.shape[0]), generator=gen)
    rows = (dy[:, None] + torch.arange(8))[:, None, :, None].expand(-1, 1, 8, 10)
    out = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(8))[:, None, None, :].expand(-1, 1, 8, 8)
    return out.gather(3, cols)


def accuracy(model: DigitsBNN, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy in eval mode."""
    model.eval()
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def train(epochs: int = 60, batch: int = 64, lr: float = 1e-2, seed: int = 0) -> DigitsBNN:
    """Train from a seeded initialisation; returns the model in eval mode."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    x_train, y_train, x_test, y_test = load_split()
    model = DigitsBNN()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * ((len(y_train) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(y_train), generator=gen)
        for i in range(0, len(order), batch):
            idx = order[i : i + batch]
            loss = F.cross_entropy(model(shift(x_train[idx], gen)), y_train[idx], label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        if (epoch + 1) % 10 == 0:
            print(f"epoch {epoch + 1:3d}  loss {loss.item():.3f}  test accuracy {accuracy(model, x_test, y_test):.4f}")
    return model.eval()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=WEIGHTS)
    parser.add_argument("--epochs", type=int, default=60)
    args = parser.parse_args()
    torch.set_num_threads(1)  # tiny layers: threads only add overhead
    torch.use_deterministic_algorithms(True)
    start = time.perf_counter()
    model = train(args.epochs)
    print(f"trained in {time.perf_counter() - start:.1f} s")
    torch.save(model.state_dict(), args.output)
    print(f"wrote {args.output} ({args.output.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
