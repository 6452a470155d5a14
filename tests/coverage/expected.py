"""What the coverage matrix expects of each denoiser (tiny config, batch 2, a 16x12 grid or 3 frames
of 16x12; `zoo.fitted_grid` where the class needs another): regions merged per kind, their grid and its
source, and whether Dynamo traces the call as one graph. Nothing merged is asserted too: those classes
are reported with the reason (`docs/coverage.md`)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Expected:
    counts: dict[str, int]
    grids: set[str]
    fullgraph: bool = True


EXPECTED = {
    "dit": Expected({"mlp": 2, "self": 2}, {"16x16 (graph: hidden_states)"}),
    "pixart": Expected({"mlp": 2, "self": 2}, {"16x12 (graph: hidden_states)"}),
    "sd3": Expected({"joint": 2, "mlp": 2}, {"16x12 (graph: hidden_states)"}),
    "auraflow": Expected({"joint": 1, "mlp": 3, "self": 2}, {"16x12 (graph: hidden_states)"}),
    "cogview3": Expected({"mlp": 2, "self": 2}, {"16x12 (graph: hidden_states)"}),
    "cogview4": Expected({"mlp": 2, "self": 2}, {"16x12 (graph: hidden_states)"}),
    "glm-image": Expected({"mlp": 2, "self": 2}, {"16x12 (graph: hidden_states)"}),
    "hunyuan-dit": Expected({"cross": 4, "mlp": 4, "self": 4}, {"16x12 (graph: hidden_states)"}),
    "sana": Expected({}, set()),
    "prx": Expected({"joint": 2, "mlp": 2}, {"16x12 (graph: hidden_states)"}),
    "dreamlite": Expected(
        {"cross": 2, "mlp": 2, "self": 2}, {"16x12 (graph: hidden_states)"}, fullgraph=False
    ),
    "flux": Expected({"joint": 1, "mlp": 1, "single": 2}, {"16x12 (ids: hidden_states)"}),
    "chroma": Expected({"joint": 1, "mlp": 1, "single": 2}, {"16x12 (ids: hidden_states)"}),
    "bria": Expected({"joint": 1, "mlp": 1, "single": 2}, {"16x12 (ids: hidden_states)"}),
    "bria-fibo": Expected({"joint": 1, "mlp": 1, "single": 2}, {"16x12 (ids: hidden_states)"}),
    "longcat-image": Expected({"joint": 1, "mlp": 1, "single": 2}, {"16x12 (ids: hidden_states)"}),
    "ovis-image": Expected({"joint": 1, "mlp": 1, "self": 2}, {"16x12 (ids: hidden_states)"}),
    "flux2": Expected({"joint": 1, "mlp": 1, "self": 2}, {"16x12 (ids: hidden_states)"}),
    "flux3": Expected({"single": 3}, {"16x12 (ids: hidden_states)"}),
    "hidream": Expected({}, set(), fullgraph=False),
    "qwen-image": Expected({"joint": 2, "mlp": 2}, {"16x12 (positions: hidden_states)"}),
    "nucleus-moe": Expected({"joint": 2, "mlp": 1}, {"16x12 (positions: hidden_states)"}),
    "qwen-image-2.1": Expected({}, set(), fullgraph=False),
    "lumina-next": Expected({"mlp": 2, "self": 2}, {"16x12 (graph: hidden_states)"}),
    "lumina2": Expected({"mlp": 3, "self": 3}, {"16x12 (call: stack0_0)"}, fullgraph=False),
    "z-image": Expected({"mlp": 1, "self": 1}, {"16x12 (call: stack0_0)"}, fullgraph=False),
    "bria-fibo2": Expected(
        {"cross": 1, "mlp": 3, "self": 3}, {"16x12 (call: hidden_states)"}, fullgraph=False
    ),
    "omnigen": Expected({}, set(), fullgraph=False),
    "ernie-image": Expected({"mlp": 2, "self": 2}, {"16x12 (graph: hidden_states)"}),
    "ideogram4": Expected({"mlp": 2, "self": 2}, {"16x12 (positions: hidden_states)"}),
    "krea2": Expected({"mlp": 2, "self": 2}, {"16x12 (ids: hidden_states)"}),
    "hunyuan-image": Expected(
        {"joint": 1, "mlp": 1, "single": 2}, {"16x12 (call: hidden_states)"}, fullgraph=False
    ),
    "wan2.1": Expected({"cross": 2, "mlp": 2, "self": 2}, {"3x16x12 (graph: hidden_states)"}),
    "wan2.1-i2v": Expected({"cross": 2, "mlp": 2, "self": 2}, {"3x16x12 (graph: hidden_states)"}),
    "wan2.2": Expected({"cross": 2, "mlp": 2, "self": 2}, {"3x16x12 (graph: hidden_states)"}),
    "wan2.1-vace": Expected(
        {"cross": 6, "mlp": 6, "self": 6},
        {"3x16x12 (graph: control_hidden_states)", "3x16x12 (graph: hidden_states)"},
    ),
    "wan2.2-animate": Expected({"cross": 2, "mlp": 2, "self": 2}, {"3x16x12 (graph: hidden_states)"}),
    "skyreels-v2": Expected({"cross": 2, "mlp": 2, "self": 2}, {"3x16x12 (graph: hidden_states)"}),
    "chronoedit": Expected({"cross": 2, "mlp": 2, "self": 2}, {"3x16x12 (graph: hidden_states)"}),
    "helios": Expected({"cross": 2, "mlp": 2, "self": 2}, {"3x16x12 (graph: hidden_states)"}),
    "anyflow": Expected({"cross": 2, "mlp": 2, "self": 2}, {"3x16x12 (graph: hidden_states)"}),
    "anyflow-far": Expected({"cross": 1, "mlp": 1}, {"3x16x12 (graph: hidden_states)"}),
    "ltx": Expected({"mlp": 2, "self": 2}, {"3x16x12 (positions: hidden_states)"}),
    "ltx2": Expected({"mlp": 2, "self": 2}, {"3x16x12 (positions: hidden_states)"}),
    "cogvideox": Expected({"mlp": 2, "self": 2}, {"3x16x12 (graph: hidden_states)"}),
    "cogvideox1.5": Expected({"mlp": 2, "self": 2}, {"3x16x12 (graph: hidden_states)"}),
    "consisid": Expected({"mlp": 2, "self": 2}, {"3x16x12 (graph: hidden_states)"}),
    "mochi": Expected({"mlp": 2}, {"3x16x12 (graph: hidden_states)"}),
    "latte": Expected({"mlp": 1, "self": 1}, {"16x12 (graph: hidden_states)"}),
    "allegro": Expected({"cross": 2, "mlp": 2, "self": 2}, {"3x16x12 (graph: hidden_states)"}),
    "easyanimate": Expected({"joint": 2, "mlp": 2}, {"3x16x12 (graph: hidden_states)"}),
    "cosmos-predict2": Expected({"cross": 2, "mlp": 2, "self": 2}, {"3x16x12 (graph: hidden_states)"}),
    "sana-video": Expected({}, set()),
    "hunyuanvideo": Expected({"joint": 1, "mlp": 1, "single": 1}, {"3x16x12 (graph: hidden_states)"}),
    "hunyuanvideo-i2v": Expected({"joint": 1, "mlp": 1, "single": 1}, {"3x16x12 (graph: hidden_states)"}),
    "hunyuanvideo1.5": Expected({"joint": 1, "mlp": 1}, {"3x16x12 (call: hidden_states)"}, fullgraph=False),
    "framepack": Expected({"joint": 1, "mlp": 1, "single": 1}, {"3x16x12 (graph: hidden_states)"}),
    "motif-video": Expected({"joint": 1, "mlp": 1, "single": 2}, {"3x16x12 (graph: hidden_states)"}),
    "kandinsky5": Expected({"cross": 2, "mlp": 2, "self": 2}, {"3x16x12 (graph: hidden_states)"}),
    "kandinsky6": Expected({"cross": 4, "mlp": 2, "self": 2}, {"3x16x12 (graph: hidden_states)"}),
    "minimax-h3": Expected({}, set()),
    "kandinsky6-sr": Expected({}, set()),
}
