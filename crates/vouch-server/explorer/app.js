document.getElementById("app").textContent = "The explorer is being built.";
