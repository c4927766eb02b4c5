"""torch on the CPU: tensors (in-place ops, views sharing storage, requires_grad, gradients),
modules (parameters, buffers, training mode), optimizers and schedulers tied to a module's
parameters, generators."""

from __future__ import annotations

from covcase import Case

T = "torch"
I = "import torch\ntorch.manual_seed(0)"
M = I + "\nfrom torch import nn"

CASES = [
    Case(T, "Tensor float32: in-place ops", I, "th_t = torch.arange(6, dtype=torch.float32).reshape(2, 3)", "th_t.add_(1)\nth_t[0, 0] = -5", eq="tensor"),
    Case(T, "Tensor int64 / bool / bfloat16", I, "th_kinds = [torch.arange(4), torch.zeros(3, dtype=torch.bool), torch.ones(2, dtype=torch.bfloat16)]",
         "th_kinds[0].mul_(3)\nth_kinds[1][1] = True\nth_kinds[2].div_(4)", eq="state"),
    Case(T, "Tensor views sharing storage", I, "th_base = torch.zeros(8)\nth_view = th_base[2:6]\nth_t2 = th_base.view(2, 4)",
         "th_view.fill_(3.0)", names=("th_base", "th_view", "th_t2"), eq="tensor",
         same=("th_view.untyped_storage().data_ptr() == th_base.untyped_storage().data_ptr()", "th_t2.data_ptr() == th_base.data_ptr()")),
    Case(T, "Tensor: requires_grad_ set", I, "th_leaf = torch.ones(3)", "th_leaf.requires_grad_(True)", eq="tensor"),
    Case(T, "Tensor: gradient accumulated by backward", I, "th_w = torch.tensor([1.0, 2.0], requires_grad=True)", "(th_w ** 2).sum().backward()", eq="tensor"),
    Case(T, "sparse COO tensor: values changed", I, "th_sparse = torch.sparse_coo_tensor([[0, 1], [1, 0]], [1.0, 2.0], (2, 2)).coalesce()",
         "th_sparse.values().mul_(10)", eq="tensor"),
    Case(T, "nn.Linear: weights changed in place", M, "th_lin = nn.Linear(3, 2)", "with torch.no_grad():\n    th_lin.weight.mul_(2)\n    th_lin.bias.zero_()", eq="module"),
    Case(T, "nn.Sequential: one training step", M + "\nth_xs = torch.randn(8, 3)\nth_ys = torch.randn(8, 1)",
         "th_net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))",
         "th_loss = nn.functional.mse_loss(th_net(th_xs), th_ys)\nth_loss.backward()\nwith torch.no_grad():\n    for p in th_net.parameters():\n        p -= 0.1 * p.grad",
         names=("th_net",), eq="module"),
    Case(T, "nn.Module: train/eval mode", M, "th_drop = nn.Sequential(nn.Dropout(0.5), nn.Linear(2, 2))", "th_drop.eval()", eq="module"),
    Case(T, "nn.BatchNorm1d: running statistics (buffers) updated", M + "\nth_batch = torch.randn(16, 3)", "th_bn = nn.BatchNorm1d(3)", "th_bn(th_batch)",
         eq="module"),
    Case(T, "nn.Module subclass defined in the notebook", M,
         "class ThNet(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.fc = nn.Linear(2, 1)\n        self.calls = 0\n    def forward(self, x):\n        self.calls += 1\n        return self.fc(x)\nth_custom = ThNet()",
         "th_custom(torch.ones(1, 2))\nwith torch.no_grad():\n    th_custom.fc.weight.fill_(0.5)", names=("th_custom",),
         eq="lambda a, b: module(a, b) and a.calls == b.calls", same=("type(th_custom) is ThNet",)),
    Case(T, "nn.Parameter on its own", M, "th_param = nn.Parameter(torch.ones(2))", "with torch.no_grad():\n    th_param.add_(1)", eq="tensor"),
    Case(T, "optim.SGD with momentum: step (module and optimizer share parameters)", M,
         "th_model = nn.Linear(2, 1)\nth_sgd = torch.optim.SGD(th_model.parameters(), lr=0.1, momentum=0.9)",
         "th_model(torch.ones(4, 2)).sum().backward()\nth_sgd.step()", names=("th_sgd", "th_model"), eq={"th_sgd": "optimizer", "th_model": "module"},
         same=("th_sgd.param_groups[0]['params'][0] is th_model.weight",)),
    Case(T, "optim.Adam: step and lr change", M, "th_amodel = nn.Linear(2, 2)\nth_adam = torch.optim.Adam(th_amodel.parameters(), lr=0.01)",
         "th_amodel(torch.ones(1, 2)).pow(2).sum().backward()\nth_adam.step()\nth_adam.param_groups[0]['lr'] = 0.001", names=("th_adam", "th_amodel"),
         eq={"th_adam": "optimizer", "th_amodel": "module"}, same=("th_adam.param_groups[0]['params'][1] is th_amodel.bias",)),
    Case(T, "lr_scheduler.StepLR: step", M, "th_smodel = nn.Linear(1, 1)\nth_opt = torch.optim.SGD(th_smodel.parameters(), lr=1.0)\nth_sched = torch.optim.lr_scheduler.StepLR(th_opt, step_size=1, gamma=0.5)",
         "th_opt.step()\nth_sched.step()", names=("th_sched", "th_opt"),
         eq={"th_sched": "lambda a, b: a.last_epoch == b.last_epoch and a.get_last_lr() == b.get_last_lr()", "th_opt": "optimizer"},
         same=("th_sched.optimizer is th_opt",)),
    Case(T, "torch.Generator: state advanced", I, "th_gen = torch.Generator().manual_seed(3)", "torch.rand(4, generator=th_gen)",
         eq="lambda a, b: torch.equal(a.get_state(), b.get_state())"),
]
