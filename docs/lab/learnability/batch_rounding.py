"""How much do the nets' outputs depend on the batch size? (lab; repo root)

oneDNN picks its convolution kernels by batch size, and their float round-off differs. This
runs the shipped surrogate (its CAM layer, what EigenCAM reads) and the shipped generator
directly, without the marker's fixed-size passes, on the same images in batches of 1, 2, 8
and 16, and prints the largest difference from the batch of 16. Then it shows what that means
for a release: the share of 16-bit pixel values of marked images that change. One thread.

    PYTHONPATH=. python docs/lab/learnability/batch_rounding.py
"""
import numpy as np
import torch

from xmark_core.app_support.demo import default_models_dir
from xmark_core.data.base import to_arrays
from xmark_core.data.phantom import PhantomDataset
from xmark_core.generator.model import load_marker
from xmark_core.nets.batch import resize_batch
from xmark_core.nets.classifiers import default_cam_layer

torch.set_num_threads(1)
root = default_models_dir()
mk = load_marker(root / "surrogate.pt", root / "generator.pt", device="cpu")
acts: list[torch.Tensor] = []
default_cam_layer(mk.surrogate).register_forward_hook(lambda mod, i, o: acts.append(o.detach().clone()))


def batched(fn, b: int, *xs: torch.Tensor) -> torch.Tensor:
    """``fn`` over ``xs`` in batches of ``b``, concatenated."""
    return torch.cat([fn(*(x[i:i + b] for x in xs)) for i in range(0, len(xs[0]), b)])


def quantised(images: np.ndarray, delta: torch.Tensor) -> np.ndarray:
    return np.round(np.clip(images + delta[:, 0].numpy(), 0, 1) * 65535)


def cam_layer(x: torch.Tensor) -> torch.Tensor:
    acts.clear()
    mk.surrogate(x)
    return acts[0]


for size in (128, 256):
    X, _ = to_arrays(PhantomDataset(16, size=size, seed=2), size)
    x = torch.from_numpy(X)
    small = resize_batch(x, mk.input_size)
    s = torch.from_numpy(mk.saliency(X[:, 0])[:, None])
    with torch.no_grad():
        ref_a, ref_d = cam_layer(small), mk.generator(x, s)
        for b in (1, 2, 8):
            da = (batched(cam_layer, b, small) - ref_a).abs().max().item()
            dd = batched(mk.generator, b, x, s)
            flips = float(np.mean(quantised(X[:, 0], dd) != quantised(X[:, 0], ref_d)))
            print(f"{size} px, batch {b:2d} vs 16: surrogate CAM layer {da:.1e}, generator {(dd - ref_d).abs().max().item():.1e}, "
                  f"16-bit values changed {flips:.4%}", flush=True)
