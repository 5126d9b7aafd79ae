"""Static-grating proxy: gate area (AREA), period (PER px), orientation (TH rad) at a fixed PSNR; several suspect seeds."""
from h import *
import sys
X, y, Xt, yt = data()
AREA = float(os.environ.get("AREA", 0.25)); PER = float(os.environ.get("PER", 6)); TH = float(os.environ.get("TH", 0.7))
PSNR = float(os.environ.get("PSNR", 42.5))
seeds = [int(s) for s in sys.argv[1:]]
sur = cached("sur", X, y, 0)
q = np.where(yt != T)[0][:100]; Xq = Xt[q]

def gate(Xs):
    from xmark_core.saliency import saliency_maps
    from xmark_core.generator.model import saliency_gate
    s = saliency_maps(sur, Xs, method="eigencam", input_size=64, batch_size=64).astype(np.float32)
    return saliency_gate(torch.from_numpy(s)[:, None], AREA, 0.04).numpy()

def marks(Xs, seed):
    n = len(Xs); r = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:64, 0:64].astype(np.float32)
    k = 2 * np.pi / PER
    ph = r.uniform(0, 2 * np.pi, n).astype(np.float32)[:, None, None, None]
    g = np.sin(k * (np.cos(TH) * xx + np.sin(TH) * yy)[None, None] + ph)
    return (g * gate(Xs)).astype(np.float32)

it = np.where(y == T)[0]; kk = round(0.1 * len(it))
conf = pt(sur, X[it]); chosen = it[np.argsort(conf)[:kk]]
D = marks(X[chosen], 1)
rms = np.sqrt((D ** 2).mean()); want = 10 ** (-PSNR / 20); a = want / rms
D = D * a; Dq = marks(Xq, 99) * a
Xr = X.copy(); Xr[chosen] = np.clip(X[chosen] + D, 0, 1)
tag = f"area{AREA} per{PER} th{TH}"
print(tag, "psnr", round(psnr(Xr[chosen] - X[chosen]), 2), "maxamp", round(float(np.abs(D).max()) * 255, 1), flush=True)
for ss in seeds:
    t = time.time(); mal = train(Xr, y, ss)
    print(" ", tag, "seed", ss, "mal", verify(mal, Xq, Dq), "acc", evaluate(mal, Xt, yt).accuracy, round(time.time() - t), flush=True)
if os.environ.get("INDM"):
    print(" ", tag, "indm", verify(cached("clean", X, y, 2), Xq, Dq), flush=True)
