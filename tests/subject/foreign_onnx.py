"""Foreign ONNX exports built in the tests (no downloads, no committed binaries): the kinds of file
researchers get from others.

    johnson_zoo(path, opset=9)          # the ONNX Model Zoo's fast neural style, written node by node
    johnson_export(path, opset=9)       # the same network through torch.onnx.export, as the zoo made it
    cyclegan_export(path, opset=17, dynamic=True)   # a CycleGAN ResNet generator via torch.onnx.export
    to_float16(src, dst, io=True)       # every float tensor float16 (io=False: float32 in and out, Casts inside)
    nhwc_uint8(path)                    # an NHWC uint8 image input, Cast to float, as TensorFlow exports

The zoo's networks (mosaic, candy, udnie, rain-princess, pointilism) are Johnson et al.'s transformer
("Perceptual losses for real-time style transfer and super-resolution", ECCV 2016) as PyTorch's
fast_neural_style example builds it: a 9x9 conv, two stride-2 convs, five residual blocks, two
upsample (nearest x2) + conv stages, a 9x9 conv; instance norm, reflection padding, no final
activation; input [1,3,224,224] in [0,255], output roughly [0,255] and not clipped.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

onnx = __import__("pytest").importorskip("onnx", reason="ONNX subjects need onnx and onnx2torch")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


class _ConvLayer(nn.Module):
    def __init__(self, cin, cout, k, stride=1, upsample=None):
        super().__init__()
        self.upsample = upsample
        self.pad = nn.ReflectionPad2d(k // 2)
        self.conv = nn.Conv2d(cin, cout, k, stride)

    def forward(self, x):
        if self.upsample:
            x = nn.functional.interpolate(x, scale_factor=self.upsample, mode="nearest")
        return self.conv(self.pad(x))


class _Residual(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1, self.in1 = _ConvLayer(c, c, 3), nn.InstanceNorm2d(c, affine=True)
        self.conv2, self.in2 = _ConvLayer(c, c, 3), nn.InstanceNorm2d(c, affine=True)

    def forward(self, x):
        return x + self.in2(self.conv2(torch.relu(self.in1(self.conv1(x)))))


class TransformerNet(nn.Module):
    """Johnson et al.'s transformer (PyTorch's fast_neural_style layout); ``width`` = 32 in the zoo."""

    def __init__(self, width: int = 32, n_res: int = 5, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        w = width
        self.body = nn.Sequential(
            _ConvLayer(3, w, 9), nn.InstanceNorm2d(w, affine=True), nn.ReLU(),
            _ConvLayer(w, 2 * w, 3, 2), nn.InstanceNorm2d(2 * w, affine=True), nn.ReLU(),
            _ConvLayer(2 * w, 4 * w, 3, 2), nn.InstanceNorm2d(4 * w, affine=True), nn.ReLU(),
            *[_Residual(4 * w) for _ in range(n_res)],
            _ConvLayer(4 * w, 2 * w, 3, upsample=2), nn.InstanceNorm2d(2 * w, affine=True), nn.ReLU(),
            _ConvLayer(2 * w, w, 3, upsample=2), nn.InstanceNorm2d(w, affine=True), nn.ReLU(),
            _ConvLayer(w, 3, 9))
        with torch.no_grad():   # norms that matter, and an output around [0, 255] that leaves it at times
            for m in self.modules():
                if isinstance(m, nn.InstanceNorm2d):
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.normal_(0, 0.2)
            last = self.body[-1].conv
            last.weight.mul_(60 / last.weight.std() / (w * 81) ** 0.5)
            last.bias.fill_(127.5)

    def forward(self, x):
        return self.body(x)


def _save(model, path) -> None:
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def johnson_zoo(path, opset: int = 9, width: int = 32, n_res: int = 5, size: int = 224,
                seed: int = 0, pads_axes: bool = False) -> TransformerNet:
    """The zoo's file, node by node: Pad (reflect, pads attribute) -> Conv -> InstanceNormalization ->
    Relu ...; Upsample (nearest) with its scales an initializer (opset 9) or an attribute (opset 7 / 8);
    input "input1" [1,3,size,size], output "output1". Returns the torch network it holds. At opset
    11 and later the newer forms: Pad's pads an input (``pads_axes``: with the opset-18 axes input),
    Resize (nearest, asymmetric, floor) in place of Upsample."""
    net = TransformerNet(width, n_res, seed).eval()
    nodes, inits, k = [], [], [0]

    def name(op):
        k[0] += 1
        return f"{op}_{k[0]}"

    def init(a, n):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(a.detach().numpy().astype(np.float32)), n))
        return n

    def conv(x, layer: _ConvLayer):
        if layer.upsample:
            y = name("upsample")
            if opset >= 11:   # Resize as the dynamo exporter writes it (nearest, asymmetric, floor)
                s = init(torch.tensor([1.0, 1.0, 2.0, 2.0]), f"{y}_scales")
                nodes.append(helper.make_node("Resize", [x, "", s], [y], mode="nearest", name=y,
                                              coordinate_transformation_mode="asymmetric", nearest_mode="floor"))
            elif opset >= 9:
                s = init(torch.tensor([1.0, 1.0, 2.0, 2.0]), f"{y}_scales")
                nodes.append(helper.make_node("Upsample", [x, s], [y], mode="nearest", name=y))
            else:
                nodes.append(helper.make_node("Upsample", [x], [y], mode="nearest", scales=[1.0, 1.0, 2.0, 2.0],
                                              name=y))
            x = y
        p = layer.pad.padding[0]
        y = name("pad")
        if opset >= 11:   # pads an input
            pads = f"{y}_pads"
            if pads_axes:
                inits.append(numpy_helper.from_array(np.array([p, p, p, p], np.int64), pads))
                axes = f"{y}_axes"
                inits.append(numpy_helper.from_array(np.array([2, 3], np.int64), axes))
                nodes.append(helper.make_node("Pad", [x, pads, "", axes], [y], mode="reflect", name=y))
            else:
                inits.append(numpy_helper.from_array(np.array([0, 0, p, p, 0, 0, p, p], np.int64), pads))
                nodes.append(helper.make_node("Pad", [x, pads], [y], mode="reflect", name=y))
        else:
            nodes.append(helper.make_node("Pad", [x], [y], mode="reflect", pads=[0, 0, p, p, 0, 0, p, p], name=y))
        c = layer.conv
        z = name("conv")
        nodes.append(helper.make_node("Conv", [y, init(c.weight, f"{z}_W"), init(c.bias, f"{z}_B")], [z],
                                      kernel_shape=list(c.kernel_size), strides=list(c.stride), name=z))
        return z

    def norm(x, m):
        y = name("instnorm")
        nodes.append(helper.make_node("InstanceNormalization", [x, init(m.weight, f"{y}_scale"),
                                                                init(m.bias, f"{y}_B")], [y], epsilon=m.eps, name=y))
        return y

    def relu(x):
        y = name("relu")
        nodes.append(helper.make_node("Relu", [x], [y], name=y))
        return y

    x = "input1"
    mods = list(net.body)
    i = 0
    while i < len(mods):
        m = mods[i]
        if isinstance(m, _ConvLayer):
            x = conv(x, m)
        elif isinstance(m, nn.InstanceNorm2d):
            x = norm(x, m)
        elif isinstance(m, nn.ReLU):
            x = relu(x)
        else:   # residual block
            h = relu(norm(conv(x, m.conv1), m.in1))
            h = norm(conv(h, m.conv2), m.in2)
            y = name("add")
            nodes.append(helper.make_node("Add", [x, h], [y], name=y))
            x = y
        i += 1
    nodes[-1].output[0] = "output1"
    graph = helper.make_graph(nodes, "johnson_zoo", [helper.make_tensor_value_info("input1", TensorProto.FLOAT,
                                                                                  [1, 3, size, size])],
                              [helper.make_tensor_value_info("output1", TensorProto.FLOAT, [1, 3, size, size])], inits)
    if opset <= 8:   # IR version 3 (the opset-8 files): every initializer is also a graph input
        graph.input.extend(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="pytorch")
    model.ir_version = 3 if opset <= 8 else 4 if opset <= 9 else 10
    _save(model, path)
    return net


def _export(net, path, opset, size, dynamic, input_name="input", output_name="output") -> None:
    import warnings

    x = torch.rand(1, 3, size, size) * (255 if isinstance(net, TransformerNet) else 1)
    axes = {input_name: {0: "batch", 2: "height", 3: "width"},
            output_name: {0: "batch", 2: "height", 3: "width"}} if dynamic else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (x,), str(path), opset_version=opset, dynamo=False, input_names=[input_name],
                          output_names=[output_name], dynamic_axes=axes)


def johnson_export(path, opset: int = 9, width: int = 32, n_res: int = 5, size: int = 224, seed: int = 0,
                   dynamic: bool = False) -> TransformerNet:
    """The transformer through torch.onnx.export (TorchScript exporter) as the zoo's files were made:
    at opset 9 the upsampling is an ``Upsample`` node with its scales a Constant."""
    net = TransformerNet(width, n_res, seed).eval()
    _export(net, path, opset, size, dynamic, "input1", "output1")
    return net


def cyclegan_net(ngf: int = 8, n_blocks: int = 2, seed: int = 0) -> nn.Module:
    """A CycleGAN ResNet generator (Zhu et al., ICCV 2017: reflection pad, 7x7 conv, instance norm,
    stride-2 convs, residual blocks, transposed convs, 7x7 conv, tanh), random affine norms."""
    from interp_gan.models.resnet_generator import ResnetGenerator

    torch.manual_seed(seed)
    d = 4 * ngf
    layers = [{"role": "stem", "in": 3, "out": ngf, "k": 7, "bias": True},
              {"role": "down", "in": ngf, "out": 2 * ngf, "k": 3, "bias": True},
              {"role": "down", "in": 2 * ngf, "out": d, "k": 3, "bias": True},
              *[{"role": "block", "in": d, "out": d, "k": 3, "bias": True} for _ in range(n_blocks)],
              {"role": "up", "in": d, "out": 2 * ngf, "k": 3, "bias": True, "up": "transposed"},
              {"role": "up", "in": 2 * ngf, "out": ngf, "k": 3, "bias": True, "up": "transposed"},
              {"role": "head", "in": ngf, "out": 3, "k": 7, "bias": True}]
    G = ResnetGenerator(layers, norm="in_affine")
    with torch.no_grad():
        for m in G.modules():
            if isinstance(m, nn.InstanceNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.2)
    return G.eval()


def cyclegan_export(path, opset: int = 17, dynamic: bool = True, size: int = 32, ngf: int = 8,
                    n_blocks: int = 2) -> nn.Module:
    """torch.onnx.export of a CycleGAN ResNet generator (input [1,3,size,size] in [-1,1], Tanh out):
    ReflectionPad2d -> Pad mode=reflect, InstanceNorm, ConvTranspose; ``dynamic``: batch, height and
    width symbolic, else all fixed."""
    G = cyclegan_net(ngf, n_blocks)
    _export(G, path, opset, size, dynamic)
    return G


def to_float16(src, dst, io: bool = True) -> None:
    """Every float32 initializer and Constant as float16 (what ``model.half()`` before export or
    onnxconverter-common's float16 conversion writes). ``io=True``: the input and output float16 too;
    ``io=False``: they stay float32 with a Cast to float16 after the input and to float32 before the output."""
    m = onnx.load(str(src))
    g = m.graph
    scales = {n.input[k] for n in g.node for k in (1, 2) if n.op_type in ("Upsample", "Resize") and len(n.input) > k}
    for t in g.initializer:
        if t.data_type == TensorProto.FLOAT and t.name not in scales:   # resize scales stay float32
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float16), t.name))
    for n in g.node:
        for a in n.attribute:
            if (a.type == onnx.AttributeProto.TENSOR and a.t.data_type == TensorProto.FLOAT
                    and n.output[0] not in scales):
                a.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(a.t).astype(np.float16), a.t.name))
        if n.op_type == "Cast":
            for a in n.attribute:
                if a.name == "to" and a.i == TensorProto.FLOAT:
                    a.i = TensorProto.FLOAT16
    halves = {t.name for t in g.initializer if t.data_type == TensorProto.FLOAT16}
    for v in g.input[1:]:   # IR 3 lists the weights as inputs too
        if v.name in halves:
            v.type.tensor_type.elem_type = TensorProto.FLOAT16
    del g.value_info[:]
    x, y = g.input[0].name, g.output[0].name
    if io:
        for v in (g.input[0], g.output[0]):
            v.type.tensor_type.elem_type = TensorProto.FLOAT16
    else:
        for n in g.node:
            n.input[:] = [f"{x}_fp16" if i == x else i for i in n.input]
            n.output[:] = [f"{y}_fp16" if o == y else o for o in n.output]
        g.node.insert(0, helper.make_node("Cast", [x], [f"{x}_fp16"], to=TensorProto.FLOAT16, name="graph_input_cast"))
        g.node.append(helper.make_node("Cast", [f"{y}_fp16"], [y], to=TensorProto.FLOAT, name="graph_output_cast"))
    _save(m, dst)


def nhwc_uint8(path, size: int = 16, seed: int = 0, transpose_first: bool = False) -> None:
    """TensorFlow's way: image [1,size,size,3] uint8 -> Cast float -> Div 255 -> Transpose NCHW ->
    Conv 3x3 (pad 1) -> Sigmoid -> Transpose NHWC: output float in [0, 1]. ``transpose_first``: the
    uint8 image is transposed to NCHW before the Cast (a reader that is not a Cast)."""
    w = np.random.default_rng(seed).normal(size=(3, 3, 3, 3)).astype(np.float32) * 0.5
    inits = [numpy_helper.from_array(w, "W"), numpy_helper.from_array(np.float32(255), "k255")]
    if transpose_first:
        head = [helper.make_node("Transpose", ["image"], ["t"], perm=[0, 3, 1, 2], name="to_nchw"),
                helper.make_node("Cast", ["t"], ["f"], to=TensorProto.FLOAT, name="cast_in"),
                helper.make_node("Div", ["f", "k255"], ["x"], name="scale")]
    else:
        head = [helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT, name="cast_in"),
                helper.make_node("Div", ["f", "k255"], ["x01"], name="scale"),
                helper.make_node("Transpose", ["x01"], ["x"], perm=[0, 3, 1, 2], name="to_nchw")]
    nodes = [*head,
             helper.make_node("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1], name="/body/conv/Conv"),
             helper.make_node("Sigmoid", ["c"], ["s"], name="squash"),
             helper.make_node("Transpose", ["s"], ["out"], perm=[0, 2, 3, 1], name="to_nhwc")]
    graph = helper.make_graph(nodes, "nhwc_uint8", [helper.make_tensor_value_info("image", TensorProto.UINT8,
                                                                                 [1, size, size, 3])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, size, size, 3])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    _save(model, path)


def upsample9(path, mode: str = "nearest", scale: float = 2.0, size: int = 16) -> None:
    """Opset 9: image [1,3,size,size] -> 1x1 Conv -> Upsample(mode, scales [1,1,scale,scale]) -> Sigmoid."""
    w = np.random.default_rng(0).normal(size=(3, 3, 1, 1)).astype(np.float32)
    inits = [numpy_helper.from_array(np.array([1, 1, scale, scale], np.float32), "scales"),
             numpy_helper.from_array(w, "W")]
    nodes = [helper.make_node("Conv", ["img", "W"], ["c"], name="/body/Conv"),
             helper.make_node("Upsample", ["c", "scales"], ["u"], mode=mode, name="/body/Upsample"),
             helper.make_node("Sigmoid", ["u"], ["out"], name="/squash")]
    out = int(size * scale)
    graph = helper.make_graph(nodes, "upsample9", [helper.make_tensor_value_info("img", TensorProto.FLOAT,
                                                                                [1, 3, size, size])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, out, out])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)])
    model.ir_version = 4
    _save(model, path)
