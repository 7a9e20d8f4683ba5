// Shows the report of PHNet Harmonize / PHNet Harmonize Frames inside the node after a run, below its
// widgets: how much the subject changed, and when the do-no-harm threshold left it unchanged, why. The
// node grows to hold it (drawn outside, it lay over the node below). The text is drawn on the canvas, not
// held in a widget, so a saved workflow holds no report (only the node's grown size); the templates also
// wire the node's `report` output to a Preview Any node, which shows it in every frontend.
import { app } from "../../scripts/app.js";

const NODES = ["PHNetHarmonize", "PHNetHarmonizeFrames"];
const LINE_HEIGHT = 16;

// amber when a subject was left as it was or changed too little to see (phnet/corrections.py's words)
function leftAsItWas(report) {
  return /unchanged|left as (it was|they were)|too small to see|\b0 of \d+ (images|frames) changed/.test(report);
}

// a word wider than the node (a long path in a message) is cut where it meets the edge
function pieces(ctx, word, width) {
  const out = [];
  let piece = "";
  for (const ch of word) {
    if (piece && ctx.measureText(piece + ch).width > width) {
      out.push(piece);
      piece = ch;
    } else {
      piece += ch;
    }
  }
  out.push(piece);
  return out;
}

function wrap(ctx, text, width) {
  const lines = [];
  for (const paragraph of text.split("\n")) {
    let line = "";
    for (const word of paragraph.split(" ").flatMap((w) => pieces(ctx, w, width))) {
      const next = line ? `${line} ${word}` : word;
      if (line && ctx.measureText(next).width > width) {
        lines.push(line);
        line = word;
      } else {
        line = next;
      }
    }
    lines.push(line);
  }
  return lines;
}

app.registerExtension({
  name: "comfyui-phnet.report",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!NODES.includes(nodeData.name)) return;

    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      onExecuted?.apply(this, arguments);
      const text = message?.text; // a list of lines from the node; a string or nothing from elsewhere
      this.phnetReport = (Array.isArray(text) ? text : text == null ? [] : [text]).join("\n");
      this.setDirtyCanvas?.(true, true);
    };

    const onDrawForeground = nodeType.prototype.onDrawForeground;
    nodeType.prototype.onDrawForeground = function (ctx) {
      onDrawForeground?.apply(this, arguments);
      if (!this.phnetReport || this.flags?.collapsed) return;
      ctx.save();
      ctx.font = "12px sans-serif";
      ctx.fillStyle = leftAsItWas(this.phnetReport) ? "#e8b04a" : "#9fd39f";
      const lines = wrap(ctx, this.phnetReport, this.size[0] - 12);
      const top = this.computeSize ? this.computeSize()[1] : this.size[1]; // below the slots and widgets
      const needed = top + lines.length * LINE_HEIGHT + 6;
      if (this.size[1] < needed) {
        if (this.setSize) this.setSize([this.size[0], needed]);
        else this.size[1] = needed;
      }
      lines.forEach((line, i) => ctx.fillText(line, 6, top + 12 + i * LINE_HEIGHT));
      ctx.restore();
    };
  },
});
