"""Why does clean fine-tuning erase the StealthMark mark? (lab, not product code)

    python docs/lab/stealthmark_ft/ft_lab.py base|group|p03|group_p03|diag|sweep|where|otsu|restore

See README.md here for the numbers and what was kept.
"""
import copy
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from xmark_core.stealthmark.data import phantom_seg_data
from xmark_core.stealthmark.mark import SegMark
from xmark_core.stealthmark.model import build_segmenter, predict_proba
from xmark_core.stealthmark.metrics import score_segmentation
from xmark_core.stealthmark.reveal import RevealConfig
from xmark_core.stealthmark.suspects import TorchSegSuspect
from xmark_core.stealthmark.train import SegTrainConfig, train_segmenter
from xmark_core.stealthmark.verify import SegVerifyConfig, verify_segmenter

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from benchmarks.stealthmark import pruned  # noqa: E402

torch.set_num_threads(1)
SIZE, N_TRAIN = 64, 96
train = phantom_seg_data(N_TRAIN, SIZE, seed=0)
val = phantom_seg_data(24, SIZE, seed=1)
queries = phantom_seg_data(8, SIZE, seed=2).images
mark = SegMark("XMARK:T1", key="bench-owner-key-0")
BASE = dict(base=8, depth=2)


def marked_model(**over):
    arch = over.pop("arch", {})
    tag = "_".join(f"{k}{v}" for k, v in sorted({**over, **arch}.items())).replace("{", "").replace("}", "").replace("'", "").replace(" ", "").replace(":", "") or "default"
    path = Path(f"/tmp/smlab/marked_{tag}.pt")
    cfg = SegTrainConfig(**{"epochs": 30, "batch_size": 8, "seed": 0, **over}, arch_kwargs=dict(BASE, **arch))
    if path.exists():
        m = build_segmenter("unet", out_channels=3, **cfg.arch_kwargs)
        m.load_state_dict(torch.load(path, weights_only=True))
        return m.eval(), cfg
    path.parent.mkdir(exist_ok=True)
    t = time.time()
    m = train_segmenter(train.images, train.masks, cfg, mark).model
    print(f"trained {tag} in {time.time() - t:.0f}s", flush=True)
    torch.save(m.state_dict(), path)
    return m, cfg


def check(name, m, seeds=2):
    bits, dec = [], []
    for k in range(seeds):
        r = verify_segmenter(TorchSegSuspect(m, SIZE), queries, mark,
                             SegVerifyConfig(reveal=RevealConfig(n_samples=1000, seed=300 + k), detector_queries=64, seed=10_300 + k))
        bits.append(r.bit_agreement)
        dec.append(r.decoded == mark.claim)
    dice = score_segmentation(predict_proba(m, val.images), val.masks).mean_dice
    print(f"{name:40s} bits {np.mean(bits):.3f} decode {np.mean(dec):.2f} dice {dice:.4f}", flush=True)


def finetune(m, cfg, data=None, **over):
    imgs, msks = (train.images, train.masks) if data is None else data
    ft_cfg = replace(cfg, **{"epochs": 5, "lr": 1e-3, "seed": 7, **over})
    return train_segmenter(imgs, msks, ft_cfg, None, init=m).model


def bn_recal(m):
    m = copy.deepcopy(m).train()
    with torch.no_grad():
        for i in range(0, N_TRAIN, 8):
            m(torch.from_numpy(train.images[i:i + 8, None]))
    return m.eval()


if __name__ == "__main__":
    which = sys.argv[1:] or ["base"]
    if "base" in which:
        m, cfg = marked_model(poison_ratio=0.8)  # the old default
        check("marked", m)
        check("bn recalibrated on clean", bn_recal(m))
        check("finetune lr1e-3 (bench)", finetune(m, cfg))
        check("finetune lr1e-3 pos frozen", finetune(m, cfg, pos_lr_mult=0.0))
        check("finetune lr1e-4", finetune(m, cfg, lr=1e-4))
    for name, over in [("group", {"arch": {"norm": "group"}}), ("p03", {"poison_ratio": 0.3}),
                       ("group_p03", {"arch": {"norm": "group"}, "poison_ratio": 0.3})]:  # plain fine-tune
        if name in which:
            m, cfg = marked_model(**copy.deepcopy(over))
            check(f"{name} marked", m)
            check(f"{name} bn recal", bn_recal(m))
            check(f"{name} finetune lr1e-3", finetune(m, cfg))
            check(f"{name} finetune lr1e-4", finetune(m, cfg, lr=1e-4))


def diagnose(name, m):
    """Are dark and light cells still separated after the attack (only shrunk)?"""
    from sklearn.metrics import roc_auc_score

    from xmark_core.stealthmark.reveal import reveal

    st = reveal(TorchSegSuspect(m, SIZE), queries, mark, RevealConfig(n_samples=1000, seed=300))
    c, b = st.coef.ravel(), mark.bits.ravel()
    med = np.median(c)
    print(f"{name:28s} dark mean {c[b].mean() / mark.eps:.3f} eps  light mean {c[~b].mean() / mark.eps:.3f} eps  "
          f"AUC {roc_auc_score(b, c):.3f}  fixed-rule bits {np.mean((c > 0.5 * mark.eps) == b):.3f}  "
          f"median-rule bits {np.mean((c > med) == b):.3f}", flush=True)


if __name__ == "__main__" and "diag" in sys.argv[1:]:
    for tag, over in [("p0.8", {"poison_ratio": 0.8}), ("p0.3", {"poison_ratio": 0.3})]:
        m, cfg = marked_model(**over)
        diagnose(f"{tag} marked", m)
        diagnose(f"{tag} bn recal", bn_recal(m))
        diagnose(f"{tag} ft 1e-3", finetune(m, cfg))
        diagnose(f"{tag} ft 1e-4", finetune(m, cfg, lr=1e-4))


if __name__ == "__main__" and "sweep" in sys.argv[1:]:
    runs = [(f"p{p} s{sd}", {"poison_ratio": p, "seed": sd}) for p in (0.3, 0.4, 0.5, 0.6) for sd in (1, 2)]
    runs += [(f"p0.8 s{sd}", {"poison_ratio": 0.8, "seed": sd}) for sd in (1, 2)]
    runs += [(f"p0.5 mw10 s{sd}", {"poison_ratio": 0.5, "seed": sd, "mark_weight": 10.0}) for sd in (1, 2)]
    runs += [(f"p0.5 ep45 s{sd}", {"poison_ratio": 0.5, "seed": sd, "epochs": 45}) for sd in (1, 2)]
    for tag, over in runs:
        m, cfg = marked_model(**over)
        check(f"{tag} marked", m)
        check(f"{tag} ft 1e-3", finetune(m, cfg))


if __name__ == "__main__" and "where" in sys.argv[1:]:
    # where do the fine-tuned models' wrong bits lie? (rows/cols 0 and n-1 touch the image border)
    from xmark_core.stealthmark.reveal import reveal
    err = np.zeros((mark.n, mark.n))
    runs = [{"poison_ratio": p, "seed": sd} for p in (0.3, 0.4, 0.5, 0.6) for sd in (1, 2)]
    for over in runs:
        m, cfg = marked_model(**over)
        st = reveal(TorchSegSuspect(finetune(m, cfg), SIZE), queries, mark, RevealConfig(n_samples=1000, seed=300))
        err += st.bits != mark.bits
    n = mark.n
    ring = np.zeros((n, n), bool)
    ring[[0, -1], :] = ring[:, [0, -1]] = True
    ring2 = np.zeros((n, n), bool)
    ring2[:2, :] = ring2[-2:, :] = ring2[:, :2] = ring2[:, -2:] = True
    print("errors per model", err.sum() / len(runs), "share on the outer ring", err[ring].sum() / err.sum(),
          "(ring is", ring.mean(), "of cells); outer two rings", err[ring2].sum() / err.sum(), "(", ring2.mean(), ")")
    print((err).astype(int))


if __name__ == "__main__" and "otsu" in sys.argv[1:]:
    # a scale-free bit rule (Otsu's threshold on the coefficients, never looking at Q)
    from skimage.filters import threshold_otsu

    from xmark_core.stealthmark.qr import decode_code
    from xmark_core.stealthmark.reveal import reveal

    def rules(name, m):
        st = reveal(TorchSegSuspect(m, SIZE), queries, mark, RevealConfig(n_samples=1000, seed=300))
        c = st.coef
        b = c > threshold_otsu(c)
        print(f"{name:24s} fixed bits {np.mean(st.bits == mark.bits):.3f} dec {st.decoded == mark.claim}  "
              f"otsu bits {np.mean(b == mark.bits):.3f} dec {decode_code(mark.unmask(b)) == mark.claim}", flush=True)

    for over in [{"poison_ratio": p, "seed": sd} for p in (0.3, 0.4, 0.5, 0.6) for sd in (1, 2)]:
        m, cfg = marked_model(**over)
        rules(f"p{over['poison_ratio']} s{over['seed']} ft", finetune(m, cfg))
    for sd in range(3):
        clean = train_segmenter(train.images, train.masks, SegTrainConfig(epochs=30, batch_size=8, seed=sd,
                                arch_kwargs=BASE), None).model
        rules(f"innocent s{sd}", clean)


if __name__ == "__main__" and "restore" in sys.argv[1:]:
    from skimage.filters import threshold_otsu

    from xmark_core.stealthmark.qr import decode_code
    from xmark_core.stealthmark.reveal import reveal
    from xmark_core.stealthmark.qr import fixed_modules
    const, val = fixed_modules(mark.code.version, mark.code.error)
    print("fixed modules", const.sum(), "of", const.size)

    def restored(mod):
        return np.where(const, val, mod)

    rng = np.random.default_rng(0)
    q = mark.code.matrix
    for k in (10, 20, 30, 40, 50, 60):
        ok = 0
        for t in range(20):
            flip = np.zeros(q.size, bool)
            flip[rng.choice(q.size, k, replace=False)] = True
            ok += decode_code(restored(q ^ flip.reshape(q.shape))) == mark.claim
        print(f"{k:3d} flipped ({k / q.size:.3f}): restored decode {ok / 20:.2f}", flush=True)
    for over in [{"poison_ratio": p, "seed": sd} for p in (0.3, 0.4, 0.5, 0.6) for sd in (1, 2)]:
        m, cfg = marked_model(**over)
        st = reveal(TorchSegSuspect(finetune(m, cfg), SIZE), queries, mark, RevealConfig(n_samples=1000, seed=300))
        b = st.coef > threshold_otsu(st.coef)
        print(f"p{over['poison_ratio']} s{over['seed']} ft fixed {np.mean(st.bits == mark.bits):.3f} "
              f"restored {decode_code(restored(mark.unmask(st.bits))) == mark.claim} | otsu {np.mean(b == mark.bits):.3f} "
              f"restored {decode_code(restored(mark.unmask(b))) == mark.claim}", flush=True)
    for sd in range(3):
        clean = train_segmenter(train.images, train.masks, SegTrainConfig(epochs=30, batch_size=8, seed=sd,
                                arch_kwargs=BASE), None).model
        st = reveal(TorchSegSuspect(clean, SIZE), queries, mark, RevealConfig(n_samples=1000, seed=300))
        print(f"innocent s{sd}: restored decode {decode_code(restored(mark.unmask(st.bits)))}", flush=True)


