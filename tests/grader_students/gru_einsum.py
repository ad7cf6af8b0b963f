# A correct rewrite (full marks): every product of the backward passes written with einsum.


def gru_step_backward(dh, cache):
    x, h_prev, Wx, Wh, gates, hn = cache
    xp = get_array_module(dh, gates)
    H = h_prev.shape[1]
    dah, dax = xp.empty_like(gates), xp.empty_like(gates)
    dh_prev = _gru_cell_backward(dh, gates, hn, h_prev, dah, dax[:, 2 * H:])
    dax[:, :2 * H] = dah[:, :2 * H]
    dh_prev = dh_prev + xp.einsum("nk,hk->nh", dah, Wh)
    return (xp.einsum("nk,dk->nd", dax, Wx), dh_prev, xp.einsum("nd,nk->dk", x, dax),
            xp.einsum("nh,nk->hk", h_prev, dah), xp.einsum("nk->k", dax),
            xp.einsum("nk->k", dah))


def gru_backward(dhs, cache):
    x_tm, h0, Wx, Wh, gates, hns, hs = cache
    T, N, H = hs.shape
    xp = get_array_module(dhs, hs)
    dah, dax = xp.empty_like(gates), xp.empty_like(gates)
    dh = xp.zeros_like(h0)
    for t in range(T - 1, -1, -1):
        dh = dh + dhs[:, t]
        h_prev = hs[t - 1] if t > 0 else h0
        skip = _gru_cell_backward(dh, gates[t], hns[t], h_prev, dah[t], dax[t, :, 2 * H:])
        dh = xp.einsum("nk,hk->nh", dah[t], Wh) + skip
    dax[:, :, :2 * H] = dah[:, :, :2 * H]
    h_prevs = xp.concatenate([h0[None], hs[:-1]])          # (T, N, H): h_{t-1} of every t
    x = x_tm.reshape(T, N, -1)                              # (T, N, D)
    return (xp.einsum("tnk,dk->ntd", dax, Wx), dh, xp.einsum("tnd,tnk->dk", x, dax),
            xp.einsum("tnh,tnk->hk", h_prevs, dah), xp.einsum("tnk->k", dax),
            xp.einsum("tnk->k", dah))
