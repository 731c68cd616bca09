"""Discriminator dissection: a critic unit planted to detect red is labelled red on the images D
judges (the real style images carry the red), named by D's own layers; a subject without D is
skipped with its reason; D's weights come back after the random-init control."""
import torch
from torch import nn

from interp_gan.analyses import build_analysis
from interp_gan.analyses.base import AnalysisData
from interp_gan.subject.protocol import Subject

from test_dissection import scenes


class RedCritic(nn.Module):
    """A discriminator whose ``detect`` unit 0 is r - g - b of the judged image (high exactly on red)."""

    def __init__(self):
        super().__init__()
        self.trunk = nn.Conv2d(3, 6, 3, padding=1)
        self.detect = nn.Conv2d(6, 4, 1)
        self.adv_head = nn.Conv2d(6, 1, 1)
        with torch.no_grad():
            self.trunk.weight[:3].zero_()
            self.trunk.bias[:3] = 0
            for i in range(3):
                self.trunk.weight[i, i, 1, 1] = 1.0          # channels 0..2 copy r, g, b
            self.detect.weight[0].zero_()
            self.detect.bias[0] = 0
            self.detect.weight[0, :3, 0, 0] = torch.tensor([1.0, -1.0, -1.0])

    def forward(self, image):
        h = self.trunk(image)
        self.detect(h)
        return self.adv_head(h).mean(dim=(2, 3)), h.mean(dim=(2, 3))


class Grey(nn.Module):
    """A generator that paints every image mid-grey: the red is only in the real images."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x):
        return self.conv(x) * 0.0


def _subject_and_data(n: int = 32):
    subject = Subject.from_module(Grey(), discriminator=RedCritic()).eval()
    data = AnalysisData(scenes(n, 32, seed=0), torch.zeros(n, dtype=torch.long), batch_size=8,
                        style_images=scenes(n, 32, seed=1), style_labels=torch.zeros(n, dtype=torch.long))
    return subject, data


def test_the_planted_critic_unit_is_labelled_red_on_the_judged_images():
    torch.manual_seed(0)
    subject, data = _subject_and_data()
    before = {k: v.clone() for k, v in subject.discriminator.state_dict().items()}
    f = build_analysis("discriminator_dissection", layers=["detect"], n_perm=199, n_boot=100).run(subject, data)
    units = f.tables["discriminator_dissection_units"]
    row = units[(units.layer == "detect") & (units.unit == 0)].iloc[0]
    assert row.label == "red" and row.q_value < 0.05 and row.iou > 0.3, row.to_dict()
    assert set(units.layer) == {"detect"}                          # D's layers, not the generator's
    assert f.section["title"] == "Discriminator dissection"
    assert "64 images it judged: 32 generated" in f.notes[0]
    assert "discriminator_dissection_control" in f.tables   # the control re-drew D, then restored it
    after = subject.discriminator.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_a_subject_without_a_discriminator_is_skipped_with_the_reason():
    subject = Subject.from_module(Grey())
    _, data = _subject_and_data(16)
    f = build_analysis("discriminator_dissection").run(subject, data)
    assert f.skipped and "no discriminator" in f.skipped


def test_the_report_shows_it_with_the_dissection_section_under_its_own_title():
    from interp_gan.reporting import ReportContext, get_section

    torch.manual_seed(0)
    subject, data = _subject_and_data()
    f = build_analysis("discriminator_dissection", layers=["detect"], n_perm=49, n_boot=20).run(subject, data)
    sec = get_section("discriminator_dissection")(f, ReportContext(style_names=subject.style_names))
    assert sec.title == "Discriminator dissection" and sec.anchor == "discriminator_dissection"
    assert "labelled at q" in sec.blocks[0] and "images it judged" in sec.blocks[1]
