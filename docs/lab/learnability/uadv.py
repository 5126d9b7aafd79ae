from h import *
import torch.nn.functional as F
X, y, Xt, yt = data()
sur = cached("sur", X, y, 0)
for p_ in sur.parameters(): p_.requires_grad_(False)
src = os.environ.get("SRC", "target")
idx = np.where(y == T)[0] if src == "target" else np.where(y != T)[0]
xs = torch.from_numpy(X[idx])
w = torch.zeros(1, 1, 64, 64, requires_grad=True)
opt = torch.optim.Adam([w], lr=0.05)
eps = 0.03
for step in range(300):
    b = xs[torch.randint(len(xs), (64,))]
    p = eps * torch.tanh(w)
    p = F.avg_pool2d(F.pad(p, (1, 1, 1, 1), mode="replicate"), 3, 1)  # mild smoothing
    lo = sur((b + p).clamp(0, 1))
    loss = F.cross_entropy(lo, torch.full((len(b),), T)) + 0.3 * (p ** 2).mean() / eps**2
    opt.zero_grad(); loss.backward(); opt.step()
p = eps * torch.tanh(w.detach()); p = F.avg_pool2d(F.pad(p, (1, 1, 1, 1), mode="replicate"), 3, 1)[0]
p = p / p.pow(2).mean().sqrt() * float(os.environ.get("RMS", 0.008))
torch.save(p, "/tmp/exp/uadv.pt")
with torch.no_grad():
    q = torch.from_numpy(Xt[yt != T])
    print("sur dP", (F.softmax(sur((q + p).clamp(0, 1)), 1)[:, T] - F.softmax(sur(q), 1)[:, T]).mean().item(), "linf", p.abs().max().item())
