# A correct rewrite (full marks): the sequence functions as loops over the step functions.


def lstm_forward(x, h0, c0, Wx, Wh, b):
    xp = get_array_module(x, h0, c0, Wx, Wh, b)
    h, c, hs, caches = h0, c0, [], []
    for t in range(x.shape[1]):
        h, c, step = lstm_step_forward(x[:, t], h, c, Wx, Wh, b)
        hs.append(h)
        caches.append(step)
    return xp.stack(hs, axis=1), c, caches


def lstm_backward(dhs, cache, dc_last=None):
    xp = get_array_module(dhs)
    dh = xp.zeros_like(cache[0].h_prev)
    dc = xp.zeros_like(dh) if dc_last is None else dc_last
    dxs, dWx, dWh, db = [], 0, 0, 0
    for t in reversed(range(len(cache))):
        dx, dh, dc, dWx_t, dWh_t, db_t = lstm_step_backward(dhs[:, t] + dh, dc, cache[t])
        dxs.append(dx)
        dWx, dWh, db = dWx + dWx_t, dWh + dWh_t, db + db_t
    return xp.stack(dxs[::-1], axis=1), dh, dc, dWx, dWh, db
