from h import *
import sys, cv2
X, y, Xt, yt = data()
mark, sel = sys.argv[1], sys.argv[2]
amp = float(sys.argv[3]) if len(sys.argv) > 3 else 1.0
sur = cached("sur", X, y, 0); clean = cached("clean", X, y, 2)
rng = np.random.default_rng(123)
q = np.where(yt != T)[0][:100]; Xq = Xt[q]

def gate(Xs):
    from xmark_core.saliency import saliency_maps
    from xmark_core.generator.model import saliency_gate
    s = saliency_maps(sur, Xs, method="eigencam", input_size=64, batch_size=64).astype(np.float32)
    return saliency_gate(torch.from_numpy(s)[:, None], 0.25, 0.04).numpy()

def marks(Xs, seed):
    n = len(Xs); r = np.random.default_rng(seed)
    if mark == "noise":
        p = cv2.GaussianBlur(np.random.default_rng(7).standard_normal((64, 64)).astype(np.float32), (0, 0), 1.5)
        p = p / p.std() * 0.008
        return np.broadcast_to(p, Xs.shape).copy()
    if mark.startswith("grating"):
        per = float(mark[7:] or 6)
        yy, xx = np.mgrid[0:64, 0:64].astype(np.float32)
        th = float(os.environ.get("TH", 0.7)); k = 2 * np.pi / per
        ph = r.uniform(0, 2 * np.pi, n).astype(np.float32)[:, None, None, None]
        g = np.sin(k * (np.cos(th) * xx + np.sin(th) * yy)[None, None] + ph)
        return (0.022 * g * gate(Xs)).astype(np.float32)
    if mark == "uadv":
        p = torch.load("/tmp/exp/uadv.pt", weights_only=True)
        return (p[None] * gate(Xs)).numpy().astype(np.float32) if False else np.broadcast_to(p.numpy(), Xs.shape).copy()
    raise SystemExit(mark)

it = np.where(y == T)[0]; k = round(0.1 * len(it))
if sel == "hard":
    conf = pt(sur, X[it]); chosen = it[np.argsort(conf)[:k]]
else:
    chosen = rng.choice(it, k, replace=False)
D = marks(X[chosen], 1) * amp
Xr = X.copy(); Xr[chosen] = np.clip(X[chosen] + D, 0, 1)
print(mark, sel, amp, "psnr", round(psnr(Xr[chosen] - X[chosen]), 2), "n", k, flush=True)
Dq = marks(Xq, 99) * amp
print(" indm", verify(clean, Xq, Dq), flush=True)
t = time.time(); mal = train(Xr, y, int(os.environ.get("SS", 1)))
print(" mal", verify(mal, Xq, Dq), "acc", evaluate(mal, Xt, yt).accuracy, round(time.time() - t), flush=True)
