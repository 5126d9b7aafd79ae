from h import *
import sys
from xmark_core.generator.train import GeneratorTrainConfig, train_generator
from xmark_core.generator.model import Marker
X, y, Xt, yt = data()
over = json.loads(sys.argv[1]); tag = sys.argv[2]; sel = sys.argv[3] if len(sys.argv) > 3 else "hard"
sur = cached("sur", X, y, 0); clean = cached("clean", X, y, 2)
t = time.time()
res = train_generator(sur, X, y, T, GeneratorTrainConfig(**over), progress=lambda a, b: print(" gen", a, b, round(time.time() - t), flush=True))
print(" hist", {k: round(v, 3) for k, v in res.history[-1].items()}, flush=True)
torch.save(res.generator.state_dict(), f"/tmp/exp/gen_{tag}.pt")
mk = Marker(sur, res.generator, input_size=64, target=T, device=torch.device("cpu"))
it = np.where(y == T)[0]; k = round(0.1 * len(it))
if sel == "hard":
    chosen = it[np.argsort(pt(sur, X[it]))[:k]]
else:
    chosen = np.random.default_rng(123).choice(it, k, replace=False)
D = mk.perturbation(X[chosen][:, 0])[:, None]
Xr = X.copy(); Xr[chosen] = np.clip(X[chosen] + D, 0, 1)
print(tag, sel, "psnr", round(psnr(Xr[chosen] - X[chosen]), 2), flush=True)
q = np.where(yt != T)[0][:100]; Xq = Xt[q]
Dq = mk.perturbation(Xq[:, 0])[:, None]
print(" sur", verify(sur, Xq, Dq), flush=True)
print(" indm", verify(clean, Xq, Dq), flush=True)
t = time.time(); mal = train(Xr, y, int(os.environ.get("SS", 1)))
print(" mal", verify(mal, Xq, Dq), "acc", evaluate(mal, Xt, yt).accuracy, round(time.time() - t), flush=True)
