"""Attribution analyses: which pixels and units a style decision rests on (Captum), with the
sanity checks of Adebayo et al. (2018)."""
