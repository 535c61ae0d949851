"""``cg-export deploy``: from a checkpoint and the user's photographs to the fastest artifact that still draws the
same pictures, with the proof in a folder every tool opens.

:mod:`~cg_export.deploy.candidates` is what can be made (the formats table's precision matrix), :mod:`~cg_export.deploy.photos` splits the
photographs (calibration / held out), :mod:`~cg_export.deploy.choice` decides (a pure function),
:mod:`~cg_export.deploy.pipeline` runs the stages, :mod:`~cg_export.deploy.folder` replaces the folder as a whole and
:mod:`~cg_export.deploy.report` writes ``deploy.json`` and the report.
"""

from cg_export.deploy.candidates import CANDIDATES, TARGETS, CandidateSpec
from cg_export.deploy.choice import TIE_TOLERANCE, CandidateRow, Decision, choose
from cg_export.deploy.photos import DeployError, PhotoSplit, split_photos
from cg_export.deploy.pipeline import DEFAULT_SIZE, DEFAULT_TARGET, Deployment, deploy

__all__ = ["CANDIDATES", "DEFAULT_SIZE", "DEFAULT_TARGET", "TARGETS", "TIE_TOLERANCE", "CandidateRow",
           "CandidateSpec", "Decision", "DeployError", "Deployment", "PhotoSplit", "choose", "deploy", "split_photos"]
