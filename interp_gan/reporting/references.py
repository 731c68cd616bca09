"""The papers the report cites, as BibTeX and as a readable list.

    keys = references_for(["bau2019gandissect", "efron1993bootstrap"])   # ordered, de-duplicated, checked
    Path("references.bib").write_text(to_bibtex(keys))
    html = references_html(keys)

Each analysis names the papers it rests on at registration (``@register_analysis(references=...)``,
carried by its Finding); a report section may cite more by setting ``section.references = ["key", ...]``
on the ``Section`` it returns.
A paper not listed here is added with ``register_reference(Reference(...))``.
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Iterable, Literal

__all__ = ["Reference", "REFERENCES", "register_reference", "references_for",
           "to_bibtex", "references_html", "citations_html", "short_citation"]


@dataclass(frozen=True)
class Reference:
    key: str
    kind: Literal["article", "inproceedings", "book", "misc"]
    authors: tuple[str, ...]          # "Last, First" each
    title: str
    venue: str                        # journal / booktitle / publisher / "arXiv:..."
    year: int
    extra: dict[str, str] = field(default_factory=dict)   # volume, number, pages, ...

    def bibtex(self) -> str:
        venue_field = {"article": "journal", "inproceedings": "booktitle", "book": "publisher",
                       "misc": "howpublished"}[self.kind]
        rows = [("author", " and ".join(self.authors)), ("title", "{" + self.title + "}"),
                (venue_field, self.venue), ("year", str(self.year)), *self.extra.items()]
        body = ",\n".join(f"  {k} = {{{v}}}" for k, v in rows)
        return f"@{self.kind}{{{self.key},\n{body}\n}}\n"

    def text(self) -> str:
        """'Last, Last and Last. Title. Venue, Year.' (et al. after three authors)."""
        last = [a.split(",")[0].strip() for a in self.authors]
        who = ", ".join(last) if len(last) <= 3 else f"{last[0]} et al."
        title = self.title if self.title[-1] in "?!." else self.title + "."
        return f"{who.rstrip('.')}. {title} {self.venue}, {self.year}."


def _r(key, kind, authors, title, venue, year, **extra) -> Reference:
    return Reference(key, kind, tuple(authors), title, venue, year, dict(extra))


REFERENCES: dict[str, Reference] = {r.key: r for r in [
    _r("bau2017netdissect", "inproceedings",
       ["Bau, David", "Zhou, Bolei", "Khosla, Aditya", "Oliva, Aude", "Torralba, Antonio"],
       "Network Dissection: Quantifying Interpretability of Deep Visual Representations",
       "IEEE Conference on Computer Vision and Pattern Recognition (CVPR)", 2017),
    _r("bau2019gandissect", "inproceedings",
       ["Bau, David", "Zhu, Jun-Yan", "Strobelt, Hendrik", "Zhou, Bolei", "Tenenbaum, Joshua B.",
        "Freeman, William T.", "Torralba, Antonio"],
       "GAN Dissection: Visualizing and Understanding Generative Adversarial Networks",
       "International Conference on Learning Representations (ICLR)", 2019),
    _r("bau2020units", "article",
       ["Bau, David", "Zhu, Jun-Yan", "Strobelt, Hendrik", "Lapedriza, Agata", "Zhou, Bolei",
        "Torralba, Antonio"],
       "Understanding the Role of Individual Units in a Deep Neural Network",
       "Proceedings of the National Academy of Sciences", 2020, volume="117", number="48",
       pages="30071--30078"),
    _r("shen2021sefa", "inproceedings", ["Shen, Yujun", "Zhou, Bolei"],
       "Closed-Form Factorization of Latent Semantics in GANs",
       "IEEE Conference on Computer Vision and Pattern Recognition (CVPR)", 2021),
    _r("harkonen2020ganspace", "inproceedings",
       ["H{\\\"a}rk{\\\"o}nen, Erik", "Hertzmann, Aaron", "Lehtinen, Jaakko", "Paris, Sylvain"],
       "GANSpace: Discovering Interpretable GAN Controls",
       "Advances in Neural Information Processing Systems (NeurIPS)", 2020),
    _r("shen2020interfacegan", "inproceedings",
       ["Shen, Yujun", "Gu, Jinjin", "Tang, Xiaoou", "Zhou, Bolei"],
       "Interpreting the Latent Space of GANs for Semantic Face Editing",
       "IEEE Conference on Computer Vision and Pattern Recognition (CVPR)", 2020),
    _r("sundararajan2017ig", "inproceedings", ["Sundararajan, Mukund", "Taly, Ankur", "Yan, Qiqi"],
       "Axiomatic Attribution for Deep Networks",
       "International Conference on Machine Learning (ICML)", 2017),
    _r("adebayo2018sanity", "inproceedings",
       ["Adebayo, Julius", "Gilmer, Justin", "Muelly, Michael", "Goodfellow, Ian", "Hardt, Moritz",
        "Kim, Been"],
       "Sanity Checks for Saliency Maps",
       "Advances in Neural Information Processing Systems (NeurIPS)", 2018),
    _r("selvaraju2017gradcam", "inproceedings",
       ["Selvaraju, Ramprasaath R.", "Cogswell, Michael", "Das, Abhishek", "Vedantam, Ramakrishna",
        "Parikh, Devi", "Batra, Dhruv"],
       "Grad-CAM: Visual Explanations from Deep Networks via Gradient-Based Localization",
       "IEEE International Conference on Computer Vision (ICCV)", 2017),
    _r("smilkov2017smoothgrad", "misc",
       ["Smilkov, Daniel", "Thorat, Nikhil", "Kim, Been", "Vi{\\'e}gas, Fernanda", "Wattenberg, Martin"],
       "SmoothGrad: Removing Noise by Adding Noise", "arXiv:1706.03825", 2017),
    _r("kokhlikyan2020captum", "misc",
       ["Kokhlikyan, Narine", "Miglani, Vivek", "Martin, Miguel", "Wang, Edward", "Alsallakh, Bilal",
        "Reynolds, Jonathan", "Melnikov, Alexander", "Kliushkina, Natalia", "Araya, Carlos",
        "Yan, Siqi", "Reblitz-Richardson, Orion"],
       "Captum: A Unified and Generic Model Interpretability Library for PyTorch",
       "arXiv:2009.07896", 2020),
    _r("mcinnes2018umap", "misc", ["McInnes, Leland", "Healy, John", "Melville, James"],
       "UMAP: Uniform Manifold Approximation and Projection for Dimension Reduction",
       "arXiv:1802.03426", 2018),
    _r("benjamini1995fdr", "article", ["Benjamini, Yoav", "Hochberg, Yosef"],
       "Controlling the False Discovery Rate: A Practical and Powerful Approach to Multiple Testing",
       "Journal of the Royal Statistical Society: Series B", 1995, volume="57", number="1",
       pages="289--300"),
    _r("binkowski2018kid", "inproceedings",
       ["Binkowski, Mikolaj", "Sutherland, Danica J.", "Arbel, Michael", "Gretton, Arthur"],
       "Demystifying MMD GANs", "International Conference on Learning Representations (ICLR)", 2018),
    _r("efron1993bootstrap", "book", ["Efron, Bradley", "Tibshirani, Robert J."],
       "An Introduction to the Bootstrap", "Chapman \\& Hall", 1993),
    _r("hanley1982auc", "article", ["Hanley, James A.", "McNeil, Barbara J."],
       "The Meaning and Use of the Area under a Receiver Operating Characteristic (ROC) Curve",
       "Radiology", 1982, volume="143", number="1", pages="29--36"),
    _r("huang2017adain", "inproceedings", ["Huang, Xun", "Belongie, Serge"],
       "Arbitrary Style Transfer in Real-Time with Adaptive Instance Normalization",
       "IEEE International Conference on Computer Vision (ICCV)", 2017),
    _r("choi2018stargan", "inproceedings",
       ["Choi, Yunjey", "Choi, Minje", "Kim, Munyoung", "Ha, Jung-Woo", "Kim, Sunghun", "Choo, Jaegul"],
       "StarGAN: Unified Generative Adversarial Networks for Multi-Domain Image-to-Image Translation",
       "IEEE Conference on Computer Vision and Pattern Recognition (CVPR)", 2018, pages="8789--8797"),
    _r("karnin2016kll", "inproceedings", ["Karnin, Zohar", "Lang, Kevin", "Liberty, Edo"],
       "Optimal Quantile Approximation in Streams",
       "IEEE Symposium on Foundations of Computer Science (FOCS)", 2016, pages="71--78"),
    _r("voynov2020unsupervised", "inproceedings", ["Voynov, Andrey", "Babenko, Artem"],
       "Unsupervised Discovery of Interpretable Directions in the GAN Latent Space",
       "International Conference on Machine Learning (ICML)", 2020, pages="9786--9796"),
    _r("morcos2018single", "inproceedings",
       ["Morcos, Ari S.", "Barrett, David G. T.", "Rabinowitz, Neil C.", "Botvinick, Matthew"],
       "On the Importance of Single Directions for Generalization",
       "International Conference on Learning Representations (ICLR)", 2018),
    _r("simonyan2014saliency", "inproceedings", ["Simonyan, Karen", "Vedaldi, Andrea", "Zisserman, Andrew"],
       "Deep Inside Convolutional Networks: Visualising Image Classification Models and Saliency Maps",
       "International Conference on Learning Representations (ICLR), Workshop Track", 2014),
    _r("zeiler2014occlusion", "inproceedings", ["Zeiler, Matthew D.", "Fergus, Rob"],
       "Visualizing and Understanding Convolutional Networks",
       "European Conference on Computer Vision (ECCV)", 2014, pages="818--833"),
    _r("lundberg2017shap", "inproceedings", ["Lundberg, Scott M.", "Lee, Su-In"],
       "A Unified Approach to Interpreting Model Predictions",
       "Advances in Neural Information Processing Systems (NeurIPS)", 2017, pages="4765--4774"),
    _r("dhamdhere2019conductance", "inproceedings", ["Dhamdhere, Kedar", "Sundararajan, Mukund", "Yan, Qiqi"],
       "How Important Is a Neuron?",
       "International Conference on Learning Representations (ICLR)", 2019),
    _r("venna2001trustworthiness", "inproceedings", ["Venna, Jarkko", "Kaski, Samuel"],
       "Neighborhood Preservation in Nonlinear Projection Methods: An Experimental Study",
       "International Conference on Artificial Neural Networks (ICANN)", 2001, pages="485--491"),
    _r("choi2020starganv2", "inproceedings",
       ["Choi, Yunjey", "Uh, Youngjung", "Yoo, Jaejun", "Ha, Jung-Woo"],
       "StarGAN v2: Diverse Image Synthesis for Multiple Domains",
       "IEEE Conference on Computer Vision and Pattern Recognition (CVPR)", 2020),
    _r("bulat2017fan", "inproceedings", ["Bulat, Adrian", "Tzimiropoulos, Georgios"],
       "How Far Are We from Solving the 2D \\& 3D Face Alignment Problem? (and a Dataset of 230,000 3D Facial "
       "Landmarks)", "IEEE International Conference on Computer Vision (ICCV)", 2017),
    _r("wang2019adaptivewing", "inproceedings", ["Wang, Xinyao", "Bo, Liefeng", "Fuxin, Li"],
       "Adaptive Wing Loss for Robust Face Alignment via Heatmap Regression",
       "IEEE International Conference on Computer Vision (ICCV)", 2019),
    _r("gatys2016style", "inproceedings", ["Gatys, Leon A.", "Ecker, Alexander S.", "Bethge, Matthias"],
       "Image Style Transfer Using Convolutional Neural Networks",
       "IEEE Conference on Computer Vision and Pattern Recognition (CVPR)", 2016),
    _r("ustyuzhaninov2017random", "inproceedings",
       ["Ustyuzhaninov, Ivan", "Brendel, Wieland", "Gatys, Leon A.", "Bethge, Matthias"],
       "What Does It Take to Generate Natural Textures?",
       "International Conference on Learning Representations (ICLR)", 2017),
    _r("heusel2017fid", "inproceedings",
       ["Heusel, Martin", "Ramsauer, Hubert", "Unterthiner, Thomas", "Nessler, Bernhard",
        "Hochreiter, Sepp"],
       "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium",
       "Advances in Neural Information Processing Systems (NeurIPS)", 2017),
    _r("wang2004ssim", "article",
       ["Wang, Zhou", "Bovik, Alan C.", "Sheikh, Hamid R.", "Simoncelli, Eero P."],
       "Image Quality Assessment: From Error Visibility to Structural Similarity",
       "IEEE Transactions on Image Processing", 2004, volume="13", number="4", pages="600--612"),
    _r("mescheder2018r1", "inproceedings", ["Mescheder, Lars", "Geiger, Andreas", "Nowozin, Sebastian"],
       "Which Training Methods for GANs do actually Converge?",
       "International Conference on Machine Learning (ICML)", 2018),
    _r("zhu2017cyclegan", "inproceedings",
       ["Zhu, Jun-Yan", "Park, Taesung", "Isola, Phillip", "Efros, Alexei A."],
       "Unpaired Image-to-Image Translation Using Cycle-Consistent Adversarial Networks",
       "IEEE International Conference on Computer Vision (ICCV)", 2017),
    _r("park2020cut", "inproceedings", ["Park, Taesung", "Efros, Alexei A.", "Zhang, Richard", "Zhu, Jun-Yan"],
       "Contrastive Learning for Unpaired Image-to-Image Translation",
       "European Conference on Computer Vision (ECCV)", 2020),
    _r("isola2017pix2pix", "inproceedings", ["Isola, Phillip", "Zhu, Jun-Yan", "Zhou, Tinghui", "Efros, Alexei A."],
       "Image-to-Image Translation with Conditional Adversarial Networks",
       "IEEE Conference on Computer Vision and Pattern Recognition (CVPR)", 2017),
    _r("dumoulin2017cin", "inproceedings", ["Dumoulin, Vincent", "Shlens, Jonathon", "Kudlur, Manjunath"],
       "A Learned Representation for Artistic Style",
       "International Conference on Learning Representations (ICLR)", 2017),
    _r("johnson2016perceptual", "inproceedings", ["Johnson, Justin", "Alahi, Alexandre", "Fei-Fei, Li"],
       "Perceptual Losses for Real-Time Style Transfer and Super-Resolution",
       "European Conference on Computer Vision (ECCV)", 2016),
    _r("chen2019animegan", "inproceedings", ["Chen, Jie", "Liu, Gang", "Chen, Xin"],
       "AnimeGAN: A Novel Lightweight GAN for Photo Animation",
       "International Symposium on Intelligence Computation and Applications (ISICA)", 2019),
    _r("chen2018cartoongan", "inproceedings", ["Chen, Yang", "Lai, Yu-Kun", "Liu, Yong-Jin"],
       "CartoonGAN: Generative Adversarial Networks for Photo Cartoonization",
       "IEEE Conference on Computer Vision and Pattern Recognition (CVPR)", 2018),
    _r("kim2020ugatit", "inproceedings", ["Kim, Junho", "Kim, Minjae", "Kang, Hyeonwoo", "Lee, Kwanghee"],
       "U-GAT-IT: Unsupervised Generative Attentional Networks with Adaptive Layer-Instance Normalization "
       "for Image-to-Image Translation",
       "International Conference on Learning Representations (ICLR)", 2020),
    _r("karras2020stylegan2", "inproceedings",
       ["Karras, Tero", "Laine, Samuli", "Aittala, Miika", "Hellsten, Janne", "Lehtinen, Jaakko", "Aila, Timo"],
       "Analyzing and Improving the Image Quality of StyleGAN",
       "IEEE Conference on Computer Vision and Pattern Recognition (CVPR)", 2020),
    _r("karras2021stylegan3", "inproceedings",
       ["Karras, Tero", "Aittala, Miika", "Laine, Samuli", "H{\\\"a}rk{\\\"o}nen, Erik", "Hellsten, Janne",
        "Lehtinen, Jaakko", "Aila, Timo"],
       "Alias-Free Generative Adversarial Networks",
       "Advances in Neural Information Processing Systems (NeurIPS)", 2021),
    _r("huang2018munit", "inproceedings", ["Huang, Xun", "Liu, Ming-Yu", "Belongie, Serge", "Kautz, Jan"],
       "Multimodal Unsupervised Image-to-Image Translation",
       "European Conference on Computer Vision (ECCV)", 2018),
    _r("efron1987bca", "article", ["Efron, Bradley"], "Better Bootstrap Confidence Intervals",
       "Journal of the American Statistical Association", 1987, volume="82", number="397", pages="171--185"),
    # the intervals and bounds the reporting layer states beside its claims (claims.py, sections)
    _r("delong1988auc", "article", ["DeLong, Elizabeth R.", "DeLong, David M.", "Clarke-Pearson, Daniel L."],
       "Comparing the Areas under Two or More Correlated Receiver Operating Characteristic Curves: "
       "A Nonparametric Approach", "Biometrics", 1988, volume="44", number="3", pages="837--845"),
    _r("newcombe2006auc", "article", ["Newcombe, Robert G."],
       "Confidence Intervals for an Effect Size Measure Based on the Mann-Whitney Statistic. "
       "Part 2: Asymptotic Methods and Evaluation", "Statistics in Medicine", 2006, volume="25", number="4",
       pages="559--573"),
    _r("wilson1927interval", "article", ["Wilson, Edwin B."],
       "Probable Inference, the Law of Succession, and Statistical Inference",
       "Journal of the American Statistical Association", 1927, volume="22", number="158", pages="209--212"),
    _r("newcombe1998difference", "article", ["Newcombe, Robert G."],
       "Interval Estimation for the Difference Between Independent Proportions: Comparison of Eleven Methods",
       "Statistics in Medicine", 1998, volume="17", number="8", pages="873--890"),
    _r("anscombe1948transformation", "article", ["Anscombe, Francis J."],
       "The Transformation of Poisson, Binomial and Negative-Binomial Data", "Biometrika", 1948,
       volume="35", number="3/4", pages="246--254"),
    _r("bonett2000correlation", "article", ["Bonett, Douglas G.", "Wright, Thomas A."],
       "Sample Size Requirements for Estimating Pearson, Kendall and Spearman Correlations", "Psychometrika",
       2000, volume="65", number="1", pages="23--28"),
]}

def register_reference(ref: Reference) -> Reference:
    """Add a paper (refuses a different entry under an existing key); cite it from an analysis'
    ``@register_analysis(references=...)`` or a ``Section.references``."""
    old = REFERENCES.get(ref.key)
    if old is not None and old != ref:
        raise ValueError(f"reference key {ref.key!r} is already used by {old.text()!r}; pick another key")
    REFERENCES[ref.key] = ref
    return ref


def references_for(keys: Iterable[str]) -> list[str]:
    """The cited keys, ordered and de-duplicated; an unknown key raises, naming the known ones."""
    keys = list(keys)
    unknown = sorted({k for k in keys if k not in REFERENCES})
    if unknown:
        raise LookupError(f"unknown reference key(s) {unknown}; known: {sorted(REFERENCES)}; "
                          "add the paper with register_reference(Reference(...))")
    return list(dict.fromkeys(keys))


def to_bibtex(keys: Iterable[str]) -> str:
    return "\n".join(REFERENCES[k].bibtex() for k in keys)


def _plain(text: str) -> str:
    """Undo the few BibTeX escapes used above for the HTML list."""
    for a, b in (('{\\"a}', "ä"), ('{\\"o}', "ö"), ("{\\'e}", "é"), ("\\&", "&")):
        text = text.replace(a, b)
    return text


def short_citation(key: str) -> str:
    """'Bau et al. 2019' / 'Wang and Bovik 2004' for an in-text link to the reference list."""
    r = REFERENCES[key]
    last = [_plain(a.split(",")[0].strip()) for a in r.authors]
    who = last[0] if len(last) == 1 else f"{last[0]} and {last[1]}" if len(last) == 2 else f"{last[0]} et al."
    return f"{who} {r.year}"


def citations_html(keys: Iterable[str]) -> str:
    """'Cites: <a href="#ref-key">Bau et al. 2019</a> · ...' for the end of a section."""
    keys = [k for k in dict.fromkeys(keys) if k in REFERENCES]
    if not keys:
        return ""
    links = " · ".join(f'<a href="#ref-{html.escape(k)}">{html.escape(short_citation(k))}</a>' for k in keys)
    return f'<div class="cites">Cites: {links}</div>'


def references_html(keys: Iterable[str]) -> str:
    items = "".join(f'<li id="ref-{k}"><span class="refkey">[{k}]</span> '
                    f"{html.escape(_plain(REFERENCES[k].text()))}</li>" for k in keys)
    return f'<ol class="refs">{items}</ol>'
