"""The PyTorch side of `ofm bench perf --only conv`.

Times conv2d forward and the two gradients in PyTorch for a list of shapes; prints one JSON line.

    python3 torch_conv.py THREADS REPS SHAPES_JSON

SHAPES_JSON is a list of {"batch", "size", "cin", "cout", "k", "stride"} (NCHW input
[batch, cin, size, size], a k x k filter, padding k // 2). Thread settings are made before torch is
imported (as the twin does). The gradients are `aten::convolution_backward`, what autograd runs in
training. Output: {"torch_version", "threads", "results": [{"forward", "grad-input", "grad-filter"}:
seconds of each timed call, after one untimed call, per shape]}.
"""
import json, os, sys, time
threads, reps = int(sys.argv[1]), int(sys.argv[2])
shapes = json.loads(sys.argv[3])
os.environ["OMP_NUM_THREADS"] = str(threads)
os.environ["MKL_NUM_THREADS"] = str(threads)
import torch
torch.set_num_threads(threads)
try:
    torch.set_num_interop_threads(1)
except RuntimeError:
    pass
torch.manual_seed(0)
def median_seconds(f):
    f()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter(); f(); ts.append(time.perf_counter() - t0)
    return ts
out = []
for s in shapes:
    b, h, ci, co, k, st = s["batch"], s["size"], s["cin"], s["cout"], s["k"], s["stride"]
    p = k // 2
    x = torch.randn(b, ci, h, h)
    w = torch.randn(co, ci, k, k)
    with torch.no_grad():
        y = torch.nn.functional.conv2d(x, w, None, st, p)
    dy = torch.randn_like(y)
    def fwd():
        with torch.no_grad():
            torch.nn.functional.conv2d(x, w, None, st, p)
    def bwd(mask):
        return lambda: torch.ops.aten.convolution_backward(dy, x, w, None, [st, st], [p, p], [1, 1], False, [0, 0], 1, mask)
    out.append({"forward": median_seconds(fwd), "grad-input": median_seconds(bwd([True, False, False])),
                "grad-filter": median_seconds(bwd([False, True, False]))})
print(json.dumps({"torch_version": torch.__version__, "threads": torch.get_num_threads(), "results": out}))
