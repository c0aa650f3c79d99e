// yProv4ML explorer: pan and zoom of the graphs, and a node's attributes on click.
// No library, no other origin (the page's Content-Security-Policy allows scripts from the explorer only);
// every value is put into the page as text, never as HTML.
"use strict";

function panAndZoom(svg) {
  const box = svg.viewBox.baseVal;
  if (!box || !box.width) { return; }
  let drag = null;
  svg.addEventListener("wheel", (event) => {
    event.preventDefault();
    const factor = event.deltaY > 0 ? 1.15 : 1 / 1.15;
    const rect = svg.getBoundingClientRect();
    const x = box.x + (event.clientX - rect.left) / rect.width * box.width;
    const y = box.y + (event.clientY - rect.top) / rect.height * box.height;
    box.x = x - (x - box.x) * factor;
    box.y = y - (y - box.y) * factor;
    box.width *= factor;
    box.height *= factor;
  }, { passive: false });
  svg.addEventListener("mousedown", (event) => { drag = { x: event.clientX, y: event.clientY }; });
  window.addEventListener("mouseup", () => { drag = null; });
  svg.addEventListener("mousemove", (event) => {
    if (!drag) { return; }
    const rect = svg.getBoundingClientRect();
    box.x -= (event.clientX - drag.x) / rect.width * box.width;
    box.y -= (event.clientY - drag.y) / rect.height * box.height;
    drag = { x: event.clientX, y: event.clientY };
  });
}

function showNode(panel, data, key) {
  panel.replaceChildren();
  const title = document.createElement("h3");
  title.textContent = key;
  panel.appendChild(title);
  const table = document.createElement("table");
  for (const [name, value] of Object.entries(data.attributes[key] || {})) {
    const row = table.insertRow();
    row.insertCell().textContent = name;
    row.insertCell().textContent = typeof value === "string" ? value : JSON.stringify(value);
  }
  panel.appendChild(table);
  const actions = [[data.expand[key], data.expanded.includes(key) ? "collapse" : "expand"],
                   [data.open[key], "open the run's page"]];
  for (const [href, text] of actions) {
    if (!href) { continue; }
    const anchor = document.createElement("a");
    anchor.href = href;
    anchor.textContent = text;
    anchor.className = "node-action";
    panel.appendChild(anchor);
    panel.appendChild(document.createTextNode(" "));
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll(".graph svg").forEach(panAndZoom);
  const source = document.getElementById("graph-data");
  const panel = document.getElementById("node-panel");
  if (!source || !panel) { return; }
  const data = JSON.parse(source.textContent);
  document.querySelectorAll(".graph g.node").forEach((node) => {
    if (!(node.id in data.attributes)) { return; }
    node.classList.add("clickable");
    node.addEventListener("click", () => showNode(panel, data, node.id));
  });
});
